//! End to end under load: many players at once, a player that stops reading, and the memory
//! zerocast needs for them — measured on the real binary with the core's client session as the
//! player (`common::rtmp_client`), which sees every message's timestamp and arrival time.
//!
//! Numbers (CPU, VmRSS, VmHWM, PSS) are printed; run with `--nocapture` to see them. They are for
//! the test profile build (unoptimised), so CPU is an upper bound for a release build.

mod common;

use std::fs;
use std::path::Path;
use std::process::Command;
use std::thread;
use std::time::{Duration, Instant};

use common::process::Spawned;
use common::rtmp_client::{self, Continuity, End, Pause, PlayLog, PlayPlan};
use common::server::Codec;
use common::{HarnessError, TempDir};

/// Players in the load test, and the connection slots zerocast gets for them.
const LOAD_PLAYERS: usize = 100;
const LOAD_MAX_CLIENTS: &str = "150";
/// How long each load-test player plays.
const LOAD_PLAY: Duration = Duration::from_secs(20);
/// Audio each must receive: the wall time played less a second for connecting 100 players at
/// once on a loaded machine (each also gets the 300 ms join backlog on top).
const LOAD_MIN_AUDIO_S: f64 = 19.0;

/// The slow player reads this long, stops for [`SLOW_PAUSE`], then reads for [`SLOW_AFTER`].
const SLOW_BEFORE: Duration = Duration::from_secs(3);
const SLOW_PAUSE: Duration = Duration::from_secs(30);
const SLOW_AFTER: Duration = Duration::from_secs(6);
/// How often zerocast's VmRSS is sampled while the slow player stalls.
const RSS_SAMPLE: Duration = Duration::from_millis(500);
/// Samples before this (connects, the join backlog, first allocations) are warm-up.
const RSS_WARM_UP: Duration = Duration::from_secs(2);
/// How much VmRSS may grow after warm-up while a player does not read: the ring is fixed and a
/// player's backlog is at most one message copied aside, so anything like a queue would show.
const RSS_GROWTH_LIMIT_KIB: u64 = 1024;

/// Players for the memory snapshot (taken once all of them play), and how long they play.
const RSS_PLAYERS: usize = 10;
const RSS_PLAY: Duration = Duration::from_secs(7);
/// A generous sanity bound on zerocast's VmRSS with [`RSS_PLAYERS`] (the goal is a few MiB).
const RSS_LIMIT_KIB: u64 = 32 * 1024;

/// 100 players for 20 s: each gets continuous audio (no timestamp gap), at least 19 s of it.
/// Stalls are printed, not asserted: on a loaded 2-core machine the scheduler alone can hold
/// every player for half a second (timing belongs to the benchmark).
#[test]
fn hundred_players() -> Result<(), HarnessError> {
    TempDir::run("load-hundred", |dir| {
        let (mut server, port) = rtmp_client::start_zerocast(
            Codec::Pcm,
            // Every load player comes from 127.0.0.1.
            &[
                "--max-clients",
                LOAD_MAX_CLIENTS,
                "--max-per-addr",
                LOAD_MAX_CLIENTS,
            ],
            dir,
        )?;
        let pid = server.pid();
        let cpu_before = cpu_time(pid)?;
        let started = Instant::now();
        let (logs, memory) = thread::scope(|scope| {
            let players: Vec<_> = (0..LOAD_PLAYERS)
                .map(|_| scope.spawn(move || rtmp_client::play(&PlayPlan::new(port, LOAD_PLAY))))
                .collect();
            // Memory while all of them play: once zerocast has logged every play.
            let memory = wait_plays(&server, LOAD_PLAYERS).and_then(|()| Memory::of(pid));
            (join_all(players), memory)
        });
        let cpu = cpu_time(pid)?.saturating_sub(cpu_before);
        let wall = started.elapsed();
        let memory = memory?;
        eprintln!(
            "load: {LOAD_PLAYERS} players, zerocast CPU {:.2} s in {:.2} s wall ({:.1} % of one \
             core), {memory}",
            cpu.as_secs_f64(),
            wall.as_secs_f64(),
            100.0 * cpu.as_secs_f64() / wall.as_secs_f64()
        );
        let logs = logs?;
        let mut failures = Vec::new();
        let (mut least_audio, mut worst_stall) = (f64::MAX, Duration::ZERO);
        for (i, log) in logs.iter().enumerate() {
            let c = Continuity::of(&log.messages);
            least_audio = least_audio.min(c.audio_s);
            worst_stall = worst_stall.max(c.longest_stall);
            failures.extend(
                player_problems(log, &c, LOAD_MIN_AUDIO_S).map(|p| format!("player {i}: {p}")),
            );
        }
        eprintln!(
            "load: least audio {least_audio:.3} s, worst stall {} ms, {} messages in all",
            worst_stall.as_millis(),
            logs.iter().map(|l| l.messages.len()).sum::<usize>()
        );
        finish(server_alive(&mut server), failures, "hundred players")?;
        stop(server)
    })
}

/// A player stops reading for 30 s while another plays: zerocast's memory stays flat, the other
/// player is unaffected, and with the default 60 s idle timeout the slow player is kept and
/// skipped forward: when it reads again its stream continues parseable with a forward jump.
#[test]
fn slow_player_is_skipped_forward() -> Result<(), HarnessError> {
    TempDir::run("load-slow-skip", |dir| {
        let (mut server, port) = rtmp_client::start_zerocast(Codec::Pcm, &[], dir)?;
        let slow = slow_player_run(&mut server, port)?;
        let mut failures = Vec::new();
        if slow.end != End::Deadline {
            failures.push(format!("slow player ended with {:?}", slow.end));
        }
        let resumed = slow.resumed_at.unwrap_or(slow.ended_at);
        let c = Continuity::of(&slow.messages);
        let jumps: Vec<f64> = c.gaps.iter().map(|g| g.jump_ms()).collect();
        let after: Vec<_> = slow
            .messages
            .iter()
            .filter(|m| m.arrival >= resumed)
            .cloned()
            .collect();
        let after_c = Continuity::of(&after);
        eprintln!(
            "slow player (kept): {} messages, {} after resuming ({:.3} s of audio), timestamp \
             jumps {jumps:?} ms, ended {:?}",
            c.messages,
            after.len(),
            after_c.audio_s,
            slow.end
        );
        let skipped_forward = c
            .gaps
            .iter()
            .any(|g| g.jump_ms() >= 1000.0 && slow.messages[g.index].arrival >= resumed);
        if !skipped_forward {
            failures.push("no forward timestamp jump of >= 1 s after resuming".to_owned());
        }
        if jumps.iter().any(|j| *j < 0.0) {
            failures.push(format!("timestamps went backwards: {jumps:?}"));
        }
        // What arrives after the jump is the live stream again: at least most of the time read.
        let least = SLOW_AFTER.as_secs_f64() - 1.0;
        if after_c.audio_s < least {
            failures.push(format!(
                "only {:.3} s of audio after resuming, expected >= {least:.1} s",
                after_c.audio_s
            ));
        }
        finish(server_alive(&mut server), failures, "slow player skipped")?;
        stop(server)
    })
}

/// As [`slow_player_is_skipped_forward`] with `--idle-timeout-ms 10000`: zerocast drops the
/// player that has not read (nor answered a ping) for 10 s, so after its 30 s pause it gets what
/// the kernel had buffered and then the end of the connection; the other player is unaffected.
#[test]
fn slow_player_is_dropped() -> Result<(), HarnessError> {
    TempDir::run("load-slow-drop", |dir| {
        let (mut server, port) =
            rtmp_client::start_zerocast(Codec::Pcm, &["--idle-timeout-ms", "10000"], dir)?;
        let slow = slow_player_run(&mut server, port)?;
        let mut failures = Vec::new();
        let resumed = slow.resumed_at.unwrap_or(slow.ended_at);
        let c = Continuity::of(&slow.messages);
        let why: Vec<String> = server
            .log()
            .lines()
            .filter(|l| l.contains("closed:"))
            .map(str::to_owned)
            .collect();
        eprintln!(
            "slow player (dropped): {} messages, {:.3} s of audio, {}, ended {:?} {} ms after \
             resuming; zerocast: {why:?}",
            c.messages,
            c.audio_s,
            c.describe_gaps(),
            slow.end,
            slow.ended_at.saturating_sub(resumed).as_millis()
        );
        if !matches!(slow.end, End::Closed | End::Reset(_)) {
            failures.push(format!(
                "slow player not dropped: ended with {:?}",
                slow.end
            ));
        }
        if slow.ended_at > resumed + Duration::from_secs(5) {
            failures.push("the connection stayed open after resuming".to_owned());
        }
        // Whatever it got before the drop was the stream in order, buffered by the kernel.
        if !c.gaps.is_empty() {
            failures.push(format!("slow player's stream: {}", c.describe_gaps()));
        }
        if why.is_empty() {
            failures.push("zerocast logged no reason for closing the slow player".to_owned());
        }
        finish(server_alive(&mut server), failures, "slow player dropped")?;
        stop(server)
    })
}

/// Runs the slow player and a normal one side by side, samples zerocast's VmRSS, and checks the
/// normal player and the memory bound. Returns the slow player's log.
fn slow_player_run(server: &mut Spawned, port: u16) -> Result<PlayLog, HarnessError> {
    let total = SLOW_BEFORE + SLOW_PAUSE + SLOW_AFTER;
    let mut slow_plan = PlayPlan::new(port, total);
    slow_plan.pause = Some(Pause {
        after: SLOW_BEFORE,
        length: SLOW_PAUSE,
    });
    let steady_plan = PlayPlan::new(port, total);
    let pid = server.pid();
    let started = Instant::now();
    let (slow, steady, samples) = thread::scope(|scope| {
        let slow = scope.spawn(|| rtmp_client::play(&slow_plan));
        let steady = scope.spawn(|| rtmp_client::play(&steady_plan));
        let mut samples = Vec::new();
        while !(slow.is_finished() && steady.is_finished()) {
            samples.push((started.elapsed(), status_kib(pid, "VmRSS")));
            thread::sleep(RSS_SAMPLE);
        }
        (join(slow), join(steady), samples)
    });
    let (slow, steady) = (slow?, steady?);
    let rss: Vec<u64> = samples
        .into_iter()
        .filter(|(at, _)| *at >= RSS_WARM_UP)
        .map(|(_, kib)| kib)
        .collect::<Result<_, _>>()?;
    let (first, min, max) = (
        rss.first().copied().unwrap_or(0),
        rss.iter().copied().min().unwrap_or(0),
        rss.iter().copied().max().unwrap_or(0),
    );
    let mean = rss.iter().sum::<u64>() as f64 / rss.len().max(1) as f64;
    eprintln!(
        "slow player: zerocast VmRSS over {} samples after warm-up: first {first} KiB, min {min}, \
         max {max}, mean {mean:.0}, last {} KiB",
        rss.len(),
        rss.last().copied().unwrap_or(0)
    );
    let mut failures = Vec::new();
    if rss.len() < 10 {
        failures.push(format!("only {} VmRSS samples", rss.len()));
    }
    if max.saturating_sub(first) >= RSS_GROWTH_LIMIT_KIB {
        failures.push(format!(
            "VmRSS grew by {} KiB while a player did not read",
            max - first
        ));
    }
    let c = Continuity::of(&steady.messages);
    eprintln!(
        "slow player: the other player got {:.3} s of audio, {}, longest stall {} ms",
        c.audio_s,
        c.describe_gaps(),
        c.longest_stall.as_millis()
    );
    let least = total.as_secs_f64() - 1.0;
    failures.extend(player_problems(&steady, &c, least).map(|p| format!("other player: {p}")));
    finish(server_alive(server), failures, "slow player run")?;
    Ok(slow)
}

/// zerocast's VmRSS, VmHWM and PSS with 10 players after 5 s.
#[test]
fn memory_with_ten_players() -> Result<(), HarnessError> {
    TempDir::run("load-rss", |dir| {
        let (mut server, port) = rtmp_client::start_zerocast(Codec::Pcm, &[], dir)?;
        let pid = server.pid();
        let idle = Memory::of(pid)?;
        let play = RSS_PLAY;
        let (logs, memory) = thread::scope(|scope| {
            let players: Vec<_> = (0..RSS_PLAYERS)
                .map(|_| scope.spawn(move || rtmp_client::play(&PlayPlan::new(port, play))))
                .collect();
            let memory = wait_plays(&server, RSS_PLAYERS).and_then(|()| Memory::of(pid));
            (join_all(players), memory)
        });
        let memory = memory?;
        eprintln!("memory: zerocast with no player: {idle}");
        eprintln!("memory: zerocast with {RSS_PLAYERS} players playing: {memory}");
        let mut failures = Vec::new();
        if memory.rss_kib >= RSS_LIMIT_KIB {
            failures.push(format!("VmRSS {} KiB", memory.rss_kib));
        }
        for (i, log) in logs?.iter().enumerate() {
            let c = Continuity::of(&log.messages);
            let least = play.as_secs_f64() - 1.0;
            failures.extend(player_problems(log, &c, least).map(|p| format!("player {i}: {p}")));
        }
        finish(
            server_alive(&mut server),
            failures,
            "memory with ten players",
        )?;
        stop(server)
    })
}

/// Everything wrong with a player that should have played its whole plan without a gap.
fn player_problems(
    log: &PlayLog,
    c: &Continuity,
    least_audio_s: f64,
) -> impl Iterator<Item = String> {
    let mut problems = Vec::new();
    if log.end != End::Deadline {
        problems.push(format!(
            "ended with {:?} after {:.3} s",
            log.end,
            log.ended_at.as_secs_f64()
        ));
    }
    if c.not_pcm > 0 {
        problems.push(format!("{} messages are not PCM", c.not_pcm));
    }
    if !c.gaps.is_empty() {
        problems.push(c.describe_gaps());
    }
    if c.audio_s < least_audio_s {
        problems.push(format!(
            "{:.3} s of audio, expected >= {least_audio_s:.1} s",
            c.audio_s
        ));
    }
    problems.into_iter()
}

fn join<T>(
    handle: thread::ScopedJoinHandle<'_, Result<T, HarnessError>>,
) -> Result<T, HarnessError> {
    handle.join().unwrap_or_else(|_| {
        Err(HarnessError::Failed {
            what: "player thread".to_owned(),
            detail: "panicked".to_owned(),
        })
    })
}

fn join_all<T>(
    handles: Vec<thread::ScopedJoinHandle<'_, Result<T, HarnessError>>>,
) -> Result<Vec<T>, HarnessError> {
    handles.into_iter().map(join).collect()
}

/// Waits until zerocast has logged `n` accepted plays (bounded against a hang).
fn wait_plays(server: &Spawned, n: usize) -> Result<(), HarnessError> {
    common::process::wait_until("every player to play", LOAD_PLAY, || {
        Ok(server.log().matches(": play ").count() >= n)
    })
}

fn server_alive(server: &mut Spawned) -> Option<String> {
    match server.is_running() {
        Ok(true) => None,
        Ok(false) => Some(format!("zerocast exited:\n{}", server.log_tail())),
        Err(e) => Some(e.to_string()),
    }
}

/// Fails with every problem found, or passes.
fn finish(dead: Option<String>, mut failures: Vec<String>, what: &str) -> Result<(), HarnessError> {
    failures.extend(dead);
    if failures.is_empty() {
        Ok(())
    } else {
        Err(HarnessError::Failed {
            what: what.to_owned(),
            detail: failures.join("\n"),
        })
    }
}

/// SIGTERM; zerocast must exit by itself within the grace time.
fn stop(mut server: Spawned) -> Result<(), HarnessError> {
    let (status, clean) = server.stop(
        nix::sys::signal::Signal::SIGTERM,
        common::process::DROP_GRACE,
    )?;
    if clean && status.success() {
        Ok(())
    } else {
        Err(server.failed(format!("stopped with {status} (clean: {clean})")))
    }
}

/// A process's memory as the kernel counts it (proc(5)).
#[derive(Clone, Copy, Debug)]
struct Memory {
    /// Resident set now (`VmRSS` in `/proc/PID/status`).
    rss_kib: u64,
    /// Peak resident set (`VmHWM`).
    hwm_kib: u64,
    /// Proportional set size (`Pss` in `/proc/PID/smaps_rollup`): shared library pages divided
    /// among the processes that map them, the fairest "what this process costs".
    pss_kib: u64,
}

impl Memory {
    fn of(pid: u32) -> Result<Self, HarnessError> {
        Ok(Memory {
            rss_kib: status_kib(pid, "VmRSS")?,
            hwm_kib: status_kib(pid, "VmHWM")?,
            pss_kib: field_kib(&format!("/proc/{pid}/smaps_rollup"), "Pss")?,
        })
    }
}

impl std::fmt::Display for Memory {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "VmRSS {} KiB, VmHWM {} KiB, PSS {} KiB",
            self.rss_kib, self.hwm_kib, self.pss_kib
        )
    }
}

fn status_kib(pid: u32, key: &str) -> Result<u64, HarnessError> {
    field_kib(&format!("/proc/{pid}/status"), key)
}

/// The value of a `Key:   1234 kB` line.
fn field_kib(path: &str, key: &str) -> Result<u64, HarnessError> {
    let text = fs::read_to_string(Path::new(path)).map_err(|e| HarnessError::io(path, e))?;
    text.lines()
        .find_map(|line| {
            let value = line.strip_prefix(key)?.strip_prefix(':')?;
            value.split_whitespace().next()?.parse().ok()
        })
        .ok_or_else(|| HarnessError::Failed {
            what: path.to_owned(),
            detail: format!("no {key} line"),
        })
}

/// User + system CPU time of a process: fields 14 and 15 of `/proc/PID/stat`, in clock ticks
/// (proc(5)); counted from after the `)` that ends the command name, which may hold spaces.
fn cpu_time(pid: u32) -> Result<Duration, HarnessError> {
    let path = format!("/proc/{pid}/stat");
    let text = fs::read_to_string(&path).map_err(|e| HarnessError::io(&path, e))?;
    let fields: Vec<&str> = text
        .rsplit_once(')')
        .map(|(_, rest)| rest.split_whitespace().collect())
        .unwrap_or_default();
    // After the name, field 3 (state) is index 0, so field n is index n - 3.
    let ticks: Option<u64> = fields
        .get(11..13)
        .and_then(|f| f.iter().map(|v| v.parse::<u64>().ok()).sum());
    let ticks = ticks.ok_or_else(|| HarnessError::Failed {
        what: path.clone(),
        detail: "no utime/stime".to_owned(),
    })?;
    Ok(Duration::from_secs_f64(
        ticks as f64 / clock_ticks()? as f64,
    ))
}

/// `sysconf(_SC_CLK_TCK)`, through getconf(1) as the crate has no libc binding for it.
fn clock_ticks() -> Result<u64, HarnessError> {
    let out = Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .map_err(|e| HarnessError::io("run getconf CLK_TCK", e))?;
    String::from_utf8_lossy(&out.stdout)
        .trim()
        .parse()
        .map_err(|_| HarnessError::Failed {
            what: "getconf CLK_TCK".to_owned(),
            detail: String::from_utf8_lossy(&out.stdout).into_owned(),
        })
}
