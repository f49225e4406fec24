//! The one place the loop hands blocking calls to: a small thread with a bounded job queue and
//! a [`mio::Waker`] back. The loop never waits on a resolver (glibc's `getaddrinfo` blocks for
//! as long as `resolv.conf`'s servers stay silent, tens of seconds), so it submits a job, goes
//! on serving, and sees the answer as an event on [`WORKER_TOKEN`].
//!
//! Bounded on both sides: at most [`QUEUE`] jobs wait (a full queue is an error the caller
//! treats as a failed attempt and retries with its backoff), and each job has a deadline the
//! caller enforces itself — a job whose answer comes after its caller gave up is answered
//! into the void (its id no longer matches).
//!
//! Two queues, one waker (mio allows one per poll): one thread resolves names and sends title
//! updates (pushes, Icecast sources), and,
//! from the first hook on, [`HOOK_THREADS`] threads call the hooks ([`crate::hooks`]), so a hook
//! server that hangs delays neither a push's lookup nor, up to that many at once, another
//! peer's hook; a hook job still waiting when its deadline passes is answered at once without
//! being called.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::sync::mpsc::{self, Receiver, Sender, SyncSender, TrySendError};
use std::sync::{Arc, Mutex, OnceLock};
use std::thread;
use std::time::{Duration, Instant};

use mio::{Registry, Token, Waker};

/// The token the worker's waker fires on (far above any connection's).
pub const WORKER_TOKEN: Token = Token(usize::MAX - 1);
/// Threads calling hooks: hooks that may hang at once before others wait.
pub const HOOK_THREADS: usize = 4;

/// Jobs that may wait for the worker; more is a refusal, not a queue that grows.
const QUEUE: usize = 64;

/// What the worker does.
#[derive(Debug)]
pub enum Job {
    /// Resolve `host:port` to its first address (blocking DNS).
    Resolve {
        /// The caller's id for the answer.
        id: u64,
        /// Host name or address.
        host: String,
        /// Port.
        port: u16,
    },
    /// Send a small HTTP request to `addr` and read the status of its answer (a title update
    /// to an Icecast server): connect, write and read each bounded by [`HTTP_TIMEOUT`].
    Http {
        /// The caller's id for the answer.
        id: u64,
        /// Where to send it.
        addr: SocketAddr,
        /// The whole request.
        request: Vec<u8>,
    },
    /// Calls a hook; answered with its verdict.
    Hook {
        /// The caller's id for the answer.
        id: u64,
        /// The call.
        job: crate::hooks::HookJob,
        /// The whole call's time limit.
        timeout: Duration,
        /// Past this the caller has given up: not called at all.
        deadline: Instant,
    },
}

/// The bound on each step of a [`Job::Http`].
pub const HTTP_TIMEOUT: Duration = Duration::from_secs(5);

/// What the worker answers.
#[derive(Debug, PartialEq, Eq)]
pub enum Done {
    /// The answer to [`Job::Resolve`]: the address or what went wrong.
    Resolved {
        /// The job's id.
        id: u64,
        /// The first address, or the resolver's error.
        result: Result<SocketAddr, String>,
    },
    /// The answer to [`Job::Http`]: the status code, or what went wrong.
    Http {
        /// The job's id.
        id: u64,
        /// The status code of the answer.
        result: Result<u16, String>,
    },
    /// The answer to [`Job::Hook`].
    Hooked {
        /// The job's id.
        id: u64,
        /// What the hook said.
        verdict: crate::hooks::Verdict,
    },
}

/// Why a job could not be submitted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SubmitError {
    /// [`QUEUE`] jobs are already waiting (a resolver that hangs fills it).
    Busy,
    /// The worker thread is gone (it never panics; only a failed spawn gets here).
    Gone,
}

impl std::fmt::Display for SubmitError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Busy => "the resolver is busy (earlier lookups have not answered)",
            Self::Gone => "the worker thread is gone",
        })
    }
}

/// The loop's handle on the worker threads.
pub struct Worker {
    /// The resolver thread's queue, made with it at the first lookup or title (`None`: it
    /// could not start). A server without pushes never starts a thread.
    resolver: OnceLock<Option<SyncSender<Job>>>,
    /// The hook threads' queue, made with them at the first hook (`None`: they could not
    /// start).
    hooks: OnceLock<Option<SyncSender<Job>>>,
    waker: Arc<Waker>,
    answers: Sender<Done>,
    done: Receiver<Done>,
}

impl Worker {
    /// The worker's waker and answer channel; its threads start with the first job of their
    /// kind. Every answer wakes `registry`'s poll on [`WORKER_TOKEN`].
    pub fn start(registry: &Registry) -> std::io::Result<Self> {
        let waker = Arc::new(Waker::new(registry, WORKER_TOKEN)?);
        // Unbounded on this side, but it never holds more than the jobs submitted (QUEUE at a
        // time per queue) whose answers the loop has not drained yet.
        let (answers, done) = mpsc::channel();
        Ok(Self {
            resolver: OnceLock::new(),
            hooks: OnceLock::new(),
            waker,
            answers,
            done,
        })
    }

    /// Queues `job` without waiting (a hook job on the hook threads, started with the first).
    pub fn submit(&self, job: Job) -> Result<(), SubmitError> {
        let (lock, name, threads) = match job {
            Job::Resolve { .. } | Job::Http { .. } => (&self.resolver, "zerocast-worker", 1),
            Job::Hook { .. } => (&self.hooks, "zerocast-hooks", HOOK_THREADS),
        };
        let queue = lock
            .get_or_init(|| pool(name, threads, &self.waker, &self.answers).ok())
            .as_ref()
            .ok_or(SubmitError::Gone)?;
        queue.try_send(job).map_err(|e| match e {
            TrySendError::Full(_) => SubmitError::Busy,
            TrySendError::Disconnected(_) => SubmitError::Gone,
        })
    }

    /// The next answer, if one has arrived.
    pub fn next(&self) -> Option<Done> {
        self.done.try_recv().ok()
    }
}

/// `threads` threads named `name` taking jobs from one queue of [`QUEUE`]; their answers go to
/// `answers`, each followed by a wake.
fn pool(
    name: &str,
    threads: usize,
    waker: &Arc<Waker>,
    answers: &Sender<Done>,
) -> std::io::Result<SyncSender<Job>> {
    let (jobs, queue) = mpsc::sync_channel::<Job>(QUEUE);
    let queue = Arc::new(Mutex::new(queue));
    for i in 0..threads {
        let (queue, answers, waker) = (Arc::clone(&queue), answers.clone(), Arc::clone(waker));
        thread::Builder::new()
            .name(format!("{name}-{i}"))
            .spawn(move || loop {
                // The lock is held only while waiting for a job, never while running one.
                let job = match queue.lock() {
                    Ok(queue) => queue.recv(),
                    Err(_) => return,
                };
                let Ok(job) = job else { return };
                if answers.send(run(job)).is_err() {
                    return;
                }
                // A failed wake only delays the answer to the loop's next turn.
                let _ = waker.wake();
            })?;
    }
    Ok(jobs)
}

fn run(job: Job) -> Done {
    match job {
        Job::Resolve { id, host, port } => Done::Resolved {
            id,
            result: resolve(&host, port),
        },
        Job::Http { id, addr, request } => Done::Http {
            id,
            result: http(addr, &request),
        },
        Job::Hook {
            id,
            job,
            timeout,
            deadline,
        } => Done::Hooked {
            id,
            verdict: if Instant::now() >= deadline {
                crate::hooks::Verdict::Refuse("timed out waiting for a free hook worker".into())
            } else {
                job.call(timeout.min(deadline - Instant::now()))
            },
        },
    }
}

/// Blocking HTTP exchange: the worker's side of [`Job::Http`].
fn http(addr: SocketAddr, request: &[u8]) -> Result<u16, String> {
    let mut socket = TcpStream::connect_timeout(&addr, HTTP_TIMEOUT).map_err(|e| e.to_string())?;
    socket
        .set_write_timeout(Some(HTTP_TIMEOUT))
        .and_then(|()| socket.set_read_timeout(Some(HTTP_TIMEOUT)))
        .and_then(|()| socket.write_all(request))
        .map_err(|e| e.to_string())?;
    let mut head = [0u8; 64];
    let mut len = 0;
    while len < head.len() {
        match socket.read(&mut head[len..]) {
            Ok(0) => break,
            Ok(n) => len += n,
            Err(e) => return Err(e.to_string()),
        }
        if head[..len].contains(&b'\n') {
            break;
        }
    }
    let line = String::from_utf8_lossy(&head[..len]);
    line.split_whitespace()
        .nth(1)
        .and_then(|code| code.parse().ok())
        .ok_or_else(|| "no HTTP status in the answer".to_owned())
}

/// Blocking resolution: the worker's side.
fn resolve(host: &str, port: u16) -> Result<SocketAddr, String> {
    (host, port)
        .to_socket_addrs()
        .map_err(|e| format!("resolving {host}: {e}"))?
        .next()
        .ok_or_else(|| format!("{host} has no address"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use mio::{Events, Poll};

    /// A hook job whose caller gave up while it waited is answered without being called (the
    /// address would refuse the connection: the answer says it was not tried).
    #[test]
    fn a_hook_job_past_its_deadline_is_not_called() {
        let job = Job::Hook {
            id: 9,
            job: crate::hooks::HookJob::Post {
                url: crate::hooks::HookUrl::parse("http://127.0.0.1:9/h").unwrap(),
                body: String::new(),
            },
            timeout: Duration::from_secs(5),
            deadline: Instant::now(),
        };
        match run(job) {
            Done::Hooked {
                id: 9,
                verdict: crate::hooks::Verdict::Refuse(why),
            } => assert!(why.contains("waiting"), "{why}"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn answers_wake_the_poll_and_carry_the_id() {
        let mut poll = Poll::new().unwrap();
        let worker = Worker::start(poll.registry()).unwrap();
        worker
            .submit(Job::Resolve {
                id: 7,
                host: "127.0.0.1".into(),
                port: 1935,
            })
            .unwrap();
        let mut events = Events::with_capacity(4);
        let answer = loop {
            if let Some(done) = worker.next() {
                break done;
            }
            poll.poll(&mut events, Some(Duration::from_secs(10)))
                .unwrap();
            assert!(
                events.iter().any(|e| e.token() == WORKER_TOKEN),
                "woken without the worker's token"
            );
        };
        assert_eq!(
            answer,
            Done::Resolved {
                id: 7,
                result: Ok("127.0.0.1:1935".parse().unwrap())
            }
        );
    }
}
