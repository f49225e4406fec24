//! The marker signal: silence with an 80 ms tone burst every [`MARKER_EVERY`], its frequency
//! telling the burst's id (one of [`FREQS`], id mod 8), written to pacat in 10 ms blocks paced by
//! the monotonic clock; and the detector that finds the bursts in a player's decoded PCM.
//!
//! measuring.md's rules: never write ahead of the wall clock (a block is written when it is due,
//! into a pipe shrunk to one page, so nothing queues unseen), drop a block rather than wait when
//! the pipe is full, timestamp a burst just before the write of its first block (emission) and a
//! player's read that returns its first loud sample (arrival), and match the two by id.

use std::io::{self, Read, Write};
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

/// Sample rate of everything here (and of the null sink, zerocast and the seed).
pub const RATE: u32 = 44_100;
/// Frames in one block written to pacat (10 ms).
const BLOCK_FRAMES: usize = 441;
/// A burst every 2 s.
pub const MARKER_EVERY: Duration = Duration::from_secs(2);
const BLOCKS_BETWEEN: u64 = MARKER_EVERY.as_millis() as u64 / 10;
/// Each burst lasts 8 blocks (80 ms).
const BURST_BLOCKS: u64 = 8;
/// No burst in the first 3 s: pacat stalls ~1.5 s at start (measuring.md).
const WARM_UP_BLOCKS: u64 = 300;
/// Burst frequencies, by id mod 8: 200 Hz apart, far more than the 25 Hz a 40 ms window tells.
pub const FREQS: [f64; 8] = [600.0, 800.0, 1000.0, 1200.0, 1400.0, 1600.0, 1800.0, 2000.0];
/// Burst peak: half of full scale.
const AMPLITUDE: f64 = 16384.0;
/// A sample louder than this (about −18 dBFS) starts a burst at the player.
const ONSET: i16 = 4096;
/// After an onset the detector waits this long for the next one.
const REFRACTORY_FRAMES: usize = RATE as usize / 2;
/// The id is read from 40 ms of signal starting 5 ms after the onset.
const ID_SKIP_FRAMES: usize = 220;
const ID_WINDOW_FRAMES: usize = 1764;
/// An arrival is matched to the latest emission of its id at most this long before it (ids
/// repeat every 16 s).
const MATCH_LIMIT: Duration = Duration::from_secs(8);

/// A burst as emitted.
#[derive(Clone, Copy, Debug)]
pub struct Emission {
    /// Its id (counts up from 0).
    pub id: u64,
    /// Just before the write of its first block.
    pub at: Instant,
}

/// Writes the signal to pacat until stopped.
pub struct Generator {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
    emissions: Arc<Mutex<Vec<Emission>>>,
    dropped: Arc<AtomicU64>,
}

impl Generator {
    /// Starts writing to `pipe` (pacat's stdin): made nonblocking and one page long.
    pub fn start(pipe: std::process::ChildStdin) -> Result<Generator, String> {
        use nix::fcntl::{fcntl, FcntlArg, OFlag};
        let fd = pipe.as_raw_fd();
        // One page: 23 ms of audio at most can wait in the pipe.
        fcntl(fd, FcntlArg::F_SETPIPE_SZ(4096)).map_err(|e| format!("F_SETPIPE_SZ: {e}"))?;
        fcntl(fd, FcntlArg::F_SETFL(OFlag::O_NONBLOCK)).map_err(|e| format!("O_NONBLOCK: {e}"))?;
        let stop = Arc::new(AtomicBool::new(false));
        let emissions = Arc::new(Mutex::new(Vec::new()));
        let dropped = Arc::new(AtomicU64::new(0));
        let thread = {
            let (stop, emissions, dropped) = (stop.clone(), emissions.clone(), dropped.clone());
            thread::spawn(move || generate(pipe, &stop, &emissions, &dropped))
        };
        Ok(Generator {
            stop,
            thread: Some(thread),
            emissions,
            dropped,
        })
    }

    /// The bursts emitted so far.
    pub fn emissions(&self) -> Vec<Emission> {
        self.emissions.lock().map(|e| e.clone()).unwrap_or_default()
    }

    /// Blocks dropped after the warm-up because the pipe was full.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }
}

impl Drop for Generator {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn generate(
    mut pipe: std::process::ChildStdin,
    stop: &AtomicBool,
    emissions: &Mutex<Vec<Emission>>,
    dropped: &AtomicU64,
) {
    let start = Instant::now();
    let silence = vec![0u8; BLOCK_FRAMES * 4];
    // A burst whose first block could not be written is replaced by silence.
    let mut burst_lost = false;
    let mut block = vec![0u8; BLOCK_FRAMES * 4];
    for k in 0u64.. {
        if stop.load(Ordering::Relaxed) {
            return;
        }
        let due = start + Duration::from_millis(10 * k);
        let now = Instant::now();
        if due > now {
            thread::sleep(due - now);
        }
        let in_burst = k >= WARM_UP_BLOCKS && (k - WARM_UP_BLOCKS) % BLOCKS_BETWEEN < BURST_BLOCKS;
        let first = in_burst && (k - WARM_UP_BLOCKS) % BLOCKS_BETWEEN == 0;
        let id = k.saturating_sub(WARM_UP_BLOCKS) / BLOCKS_BETWEEN;
        if first {
            burst_lost = false;
        }
        let bytes: &[u8] = if in_burst && !burst_lost {
            let hz = FREQS[(id % 8) as usize];
            let offset = ((k - WARM_UP_BLOCKS) % BLOCKS_BETWEEN) as usize * BLOCK_FRAMES;
            for (i, frame) in block.chunks_exact_mut(4).enumerate() {
                let t = (offset + i) as f64 / f64::from(RATE);
                let s = (AMPLITUDE * (std::f64::consts::TAU * hz * t).sin()).round() as i16;
                let [a, b] = s.to_le_bytes();
                frame.copy_from_slice(&[a, b, a, b]);
            }
            &block
        } else {
            &silence
        };
        let at = Instant::now();
        // Less than PIPE_BUF: the write is all or nothing.
        match pipe.write(bytes) {
            Ok(_) => {
                if first {
                    if let Ok(mut e) = emissions.lock() {
                        e.push(Emission { id, at });
                    }
                }
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                // pacat's start-up stall is expected; count only drops after the warm-up.
                if k >= WARM_UP_BLOCKS {
                    dropped.fetch_add(1, Ordering::Relaxed);
                }
                if first {
                    burst_lost = true;
                }
            }
            Err(_) => return,
        }
    }
}

/// A burst as a player delivered it.
#[derive(Clone, Copy, Debug)]
pub struct Arrival {
    /// When the read returning its first loud sample came back.
    pub at: Instant,
    /// id mod 8, from its frequency.
    pub id_mod: u64,
}

/// Reads interleaved stereo S16LE from `input` (a player's stdout) in a thread and finds
/// bursts, until end of file. Also notes when the first byte arrived.
pub struct Detector {
    thread: Option<JoinHandle<(Vec<Arrival>, Option<Instant>)>>,
}

impl Detector {
    /// Starts reading.
    pub fn start(input: impl Read + Send + 'static) -> Detector {
        Detector {
            thread: Some(thread::spawn(move || detect(input))),
        }
    }

    /// Waits for end of file (stop the player first); the bursts and the first byte's time.
    pub fn finish(mut self) -> (Vec<Arrival>, Option<Instant>) {
        self.thread
            .take()
            .and_then(|t| t.join().ok())
            .unwrap_or_default()
    }
}

fn detect(mut input: impl Read) -> (Vec<Arrival>, Option<Instant>) {
    let mut buf = vec![0u8; 16384];
    let mut carry: Vec<u8> = Vec::new();
    let mut arrivals = Vec::new();
    let mut first_byte = None;
    // Frames since the last onset (None: waiting for one), and the id window being filled.
    let mut since_onset: Option<usize> = None;
    let mut window: Vec<f64> = Vec::with_capacity(ID_WINDOW_FRAMES);
    let mut onset_at = None;
    loop {
        let n = match input.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(_) => break,
        };
        let now = Instant::now();
        first_byte.get_or_insert(now);
        carry.extend_from_slice(&buf[..n]);
        let whole = carry.len() / 4 * 4;
        for frame in carry[..whole].chunks_exact(4) {
            let left = i16::from_le_bytes([frame[0], frame[1]]);
            match since_onset {
                None => {
                    if left.unsigned_abs() > ONSET.unsigned_abs() {
                        since_onset = Some(0);
                        onset_at = Some(now);
                        window.clear();
                    }
                }
                Some(f) => {
                    let f = f + 1;
                    since_onset = Some(f);
                    if f >= ID_SKIP_FRAMES && window.len() < ID_WINDOW_FRAMES {
                        window.push(f64::from(left));
                        if window.len() == ID_WINDOW_FRAMES {
                            if let Some(at) = onset_at {
                                arrivals.push(Arrival {
                                    at,
                                    id_mod: strongest(&window),
                                });
                            }
                        }
                    }
                    if f >= REFRACTORY_FRAMES {
                        since_onset = None;
                    }
                }
            }
        }
        carry.drain(..whole);
    }
    (arrivals, first_byte)
}

/// Index of the [`FREQS`] entry with the most energy in `x` (Goertzel).
fn strongest(x: &[f64]) -> u64 {
    let power = |hz: f64| {
        let coeff = 2.0 * (std::f64::consts::TAU * hz / f64::from(RATE)).cos();
        let (mut s1, mut s2) = (0.0, 0.0);
        for &v in x {
            let s = v + coeff * s1 - s2;
            s2 = s1;
            s1 = s;
        }
        s1 * s1 + s2 * s2 - coeff * s1 * s2
    };
    FREQS
        .iter()
        .enumerate()
        .map(|(i, &hz)| (i, power(hz)))
        .max_by(|a, b| a.1.total_cmp(&b.1))
        .map_or(0, |(i, _)| i as u64)
}

/// Latencies (ms) of the bursts emitted in `[from, to)` that arrived, and how many were lost.
pub fn latencies(
    emissions: &[Emission],
    arrivals: &[Arrival],
    from: Instant,
    to: Instant,
) -> (Vec<f64>, usize) {
    let mut matched: Vec<(u64, f64)> = Vec::new();
    for a in arrivals {
        let best = emissions
            .iter()
            .filter(|e| e.id % 8 == a.id_mod && e.at <= a.at && a.at - e.at < MATCH_LIMIT)
            .max_by_key(|e| e.at);
        if let Some(e) = best {
            if !matched.iter().any(|(id, _)| *id == e.id) {
                matched.push((e.id, (a.at - e.at).as_secs_f64() * 1000.0));
            }
        }
    }
    let window: Vec<&Emission> = emissions
        .iter()
        .filter(|e| e.at >= from && e.at < to)
        .collect();
    let mut lat: Vec<f64> = window
        .iter()
        .filter_map(|e| matched.iter().find(|(id, _)| *id == e.id).map(|m| m.1))
        .collect();
    lat.sort_by(f64::total_cmp);
    let lost = window.len() - lat.len();
    (lat, lost)
}

/// The `p`-th percentile of sorted values (nearest rank); NaN when empty.
pub fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = (p / 100.0 * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn burst(hz: f64, frames: usize) -> Vec<u8> {
        (0..frames)
            .flat_map(|i| {
                let t = i as f64 / f64::from(RATE);
                let s = (AMPLITUDE * (std::f64::consts::TAU * hz * t).sin()) as i16;
                let [a, b] = s.to_le_bytes();
                [a, b, a, b]
            })
            .collect()
    }

    #[test]
    fn bursts_are_found_and_told_apart() {
        let mut pcm = vec![0u8; 4 * 4410];
        for hz in [FREQS[3], FREQS[6]] {
            pcm.extend(burst(hz, 3528));
            pcm.extend(vec![0u8; 4 * 44100]);
        }
        let (arrivals, first) = detect(&pcm[..]);
        assert!(first.is_some());
        let ids: Vec<u64> = arrivals.iter().map(|a| a.id_mod).collect();
        assert_eq!(ids, [3, 6]);
    }

    #[test]
    fn nearest_rank_percentiles() {
        let v = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0, 10.0];
        assert_eq!(percentile(&v, 50.0), 5.0);
        assert_eq!(percentile(&v, 95.0), 10.0);
        assert!(percentile(&[], 50.0).is_nan());
    }
}
