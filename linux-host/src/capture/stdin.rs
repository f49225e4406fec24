//! `stdin`: raw interleaved S16_LE at the configured rate and channels, paced by the producer
//! (`arecord ... | zerocast --source stdin`, or `ffmpeg ... -f s16le - | zerocast ...`).
//!
//! The descriptor is made nonblocking and registered with mio, so reading never stalls the
//! loop. A pipe or socket is read when mio reports it readable, draining until `EAGAIN`; a
//! regular file (`< file.raw`) cannot be registered with epoll (EPERM) and is always readable,
//! so it is read a bounded amount per loop turn instead. End of input delivers the last,
//! possibly short, period and ends the stream.

use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::time::Instant;

use mio::unix::SourceFd;
use mio::{Interest, Registry};
use nix::errno::Errno;
use nix::fcntl::{fcntl, FcntlArg, OFlag};

use super::{source_token, CaptureError, Flow, Format, Periods, Sink};

/// Reads of a regular file per pump: bounds the work one loop turn does.
const FILE_READS_PER_PUMP: usize = 16;

/// Raw PCM from a file descriptor (standard input in the binary).
#[derive(Debug)]
pub struct StdinSource {
    fd: OwnedFd,
    /// The file status flags before O_NONBLOCK was added, restored on drop: the open file
    /// description is shared with whoever else holds it (a shell's terminal).
    saved_flags: OFlag,
    registered: bool,
    bytes: Vec<u8>,
    fill: usize,
    periods: Periods,
    ended: bool,
}

impl StdinSource {
    /// Reads standard input (a duplicate of fd 0).
    pub fn stdin(format: Format, registry: &Registry) -> Result<Self, CaptureError> {
        let fd = std::io::stdin()
            .as_fd()
            .try_clone_to_owned()
            .map_err(|e| CaptureError::io("dup(stdin)", &e))?;
        Self::from_fd(fd, format, registry)
    }

    /// Reads `fd`, which is made nonblocking and registered with `registry` when it can be polled.
    pub fn from_fd(fd: OwnedFd, format: Format, registry: &Registry) -> Result<Self, CaptureError> {
        let io = |op| {
            move |e: Errno| CaptureError::Io {
                op,
                errno: e as i32,
            }
        };
        let saved_flags = OFlag::from_bits_truncate(
            fcntl(fd.as_raw_fd(), FcntlArg::F_GETFL).map_err(io("fcntl"))?,
        );
        fcntl(
            fd.as_raw_fd(),
            FcntlArg::F_SETFL(saved_flags | OFlag::O_NONBLOCK),
        )
        .map_err(io("fcntl"))?;
        let registered = match registry.register(
            &mut SourceFd(&fd.as_raw_fd()),
            source_token(0),
            Interest::READABLE,
        ) {
            Ok(()) => true,
            // epoll refuses regular files (and /dev/null): they never block, so no readiness.
            Err(e) if e.raw_os_error() == Some(Errno::EPERM as i32) => false,
            Err(e) => return Err(CaptureError::io("registering stdin", &e)),
        };
        let periods = Periods::new(format.period_frames, usize::from(format.channels));
        let period_bytes = periods.frames() * periods.channels() * 2;
        Ok(Self {
            fd,
            saved_flags,
            registered,
            bytes: vec![0; period_bytes],
            fill: 0,
            periods,
            ended: false,
        })
    }

    /// Reads until the descriptor would block (or, for a regular file, a bounded number of
    /// reads), delivering each full period; at end of input delivers the rest and ends.
    pub fn pump(&mut self, sink: &mut dyn Sink) -> Result<Flow, CaptureError> {
        if self.ended {
            return Ok(Flow::Ended);
        }
        let mut reads = 0;
        loop {
            if !self.registered && reads == FILE_READS_PER_PUMP {
                return Ok(Flow::Continue);
            }
            reads += 1;
            let buf = self.bytes.get_mut(self.fill..).unwrap_or_default();
            match nix::unistd::read(self.fd.as_raw_fd(), buf) {
                Ok(0) => {
                    self.deliver(sink);
                    self.periods.finish(sink);
                    if self.fill % 2 != 0 {
                        log::warn!("stdin: input ended inside a sample; last byte dropped");
                    }
                    log::info!(
                        "stdin: end of input after {} frames; stopping",
                        self.periods.position()
                    );
                    self.ended = true;
                    return Ok(Flow::Ended);
                }
                Ok(n) => {
                    self.fill += n;
                    if self.fill == self.bytes.len() {
                        self.deliver(sink);
                    }
                }
                Err(Errno::EAGAIN) => return Ok(Flow::Continue),
                Err(Errno::EINTR) => {}
                Err(e) => {
                    return Err(CaptureError::Io {
                        op: "reading stdin",
                        errno: e as i32,
                    })
                }
            }
        }
    }

    /// Converts the whole samples collected into the period buffer (which then delivers when full).
    fn deliver(&mut self, sink: &mut dyn Sink) {
        let samples = self.fill / 2;
        let free = self.periods.free();
        let n = samples.min(free.len());
        for (out, b) in free.iter_mut().zip(self.bytes.chunks_exact(2)).take(n) {
            *out = i16::from_le_bytes([b[0], b[1]]);
        }
        // Keep an odd trailing byte for the next read.
        self.bytes.copy_within(n * 2..self.fill, 0);
        self.fill -= n * 2;
        self.periods.commit(n, sink);
    }

    /// A regular file is always ready: the loop should call again at once until its end.
    pub fn deadline(&self) -> Option<Instant> {
        (!self.registered && !self.ended).then(Instant::now)
    }

    /// Frames delivered so far.
    pub fn position(&self) -> u64 {
        self.periods.position()
    }

    /// Deregisters the descriptor.
    pub fn close(&mut self, registry: &Registry) {
        if self.registered {
            // Deregistering can only fail if it was never registered; nothing to do then.
            let _ = registry.deregister(&mut SourceFd(&self.fd.as_raw_fd()));
            self.registered = false;
        }
    }
}

impl Drop for StdinSource {
    fn drop(&mut self) {
        // Best effort: leave the shared file description as it was found.
        let _ = fcntl(self.fd.as_raw_fd(), FcntlArg::F_SETFL(self.saved_flags));
    }
}
