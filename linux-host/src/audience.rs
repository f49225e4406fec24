//! Who listens: one listener's session ([`Listening`]), Icecast's access-log line written when it
//! ends ([`AccessLog`]), and the day's counts ([`Audience`]: peak, unique addresses, hours
//! listened) in bounded memory.
//!
//! A listener is an HTTP client of a stream's audio or an RTMP player (one waiting for its
//! publisher included); HLS fetches are requests, not listeners.

use std::collections::hash_map::RandomState;
use std::fmt::Write as _;
use std::hash::BuildHasher;
use std::io::Write as _;
use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::mpsc::SyncSender;
use std::time::{SystemTime, UNIX_EPOCH};

use log::{info, warn};
use zerocast_core::time::Instant;

/// The longest `User-Agent` or `Referer` kept for a listener (the rest is cut): a listener's
/// state stays small whatever its client sends.
pub const MAX_HEADER_KEPT: usize = 256;

/// One listener's session, from the moment it was let in.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Listening {
    /// When it was let in.
    pub since: Instant,
    /// When it must go (`max_listener_duration`), if ever.
    pub until: Option<Instant>,
    /// The application of the stream it listens to.
    pub app: String,
    /// The stream name it asked for (a mount's name for HTTP, without the query).
    pub name: String,
    /// The access log's request: `GET /live/audio.mp3 HTTP/1.1`, `PLAY /live/audio RTMP`
    /// (never the query: it may carry a key).
    pub request: String,
    /// The `Referer` (HTTP) or the page URL (RTMP), cut to [`MAX_HEADER_KEPT`].
    pub referer: Option<String>,
    /// The `User-Agent` (HTTP) or the Flash version string (RTMP), cut likewise.
    pub agent: Option<String>,
}

/// `text` cut to [`MAX_HEADER_KEPT`] bytes on a character boundary.
pub fn kept(text: &str) -> String {
    let mut end = text.len().min(MAX_HEADER_KEPT);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    text[..end].to_owned()
}

/// Seconds since the Unix epoch, now (0 if the clock is before it: a Pi without RTC before NTP
/// has 1970 at worst, never earlier).
pub fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// One access-log line, Icecast's: the Apache combined format plus the seconds connected.
///
/// `ADDR - - [DD/Mon/YYYY:HH:MM:SS +0000] "REQUEST" STATUS BYTES "REFERER" "AGENT" SECONDS`
///
/// Time is UTC. Quoted fields escape `"`, `\`, control characters and non-ASCII bytes as
/// Apache does (`\"`, `\\`, `\xHH`), so a hostile header cannot forge a second line or field.
pub fn access_line(
    addr: IpAddr,
    unix_s: u64,
    listening: &Listening,
    status: u16,
    bytes: u64,
    seconds: u64,
) -> String {
    let quoted = |o: &mut String, field: Option<&str>| {
        o.push('"');
        match field {
            None | Some("") => o.push('-'),
            Some(text) => {
                for b in text.bytes() {
                    match b {
                        b'"' => o.push_str("\\\""),
                        b'\\' => o.push_str("\\\\"),
                        0x20..=0x7e => o.push(char::from(b)),
                        _ => {
                            let _ = write!(o, "\\x{b:02x}");
                        }
                    }
                }
            }
        }
        o.push('"');
    };
    let mut o = format!("{addr} - - [{}] ", clf_time(unix_s));
    quoted(&mut o, Some(&listening.request));
    let _ = write!(o, " {status} {bytes} ");
    quoted(&mut o, listening.referer.as_deref());
    o.push(' ');
    quoted(&mut o, listening.agent.as_deref());
    let _ = write!(o, " {seconds}");
    o
}

/// The common log format's time, in UTC: `07/Dec/2026:13:39:42 +0000`.
fn clf_time(unix_s: u64) -> String {
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let (year, month, day) = civil_date(unix_s / 86_400);
    let s = unix_s % 86_400;
    format!(
        "{day:02}/{}/{year}:{:02}:{:02}:{:02} +0000",
        MONTHS[usize::from(month - 1).min(11)],
        s / 3600,
        s / 60 % 60,
        s % 60
    )
}

/// The proleptic Gregorian date of day `days` since 1970-01-01 (Howard Hinnant's
/// `civil_from_days`): year, month 1 to 12, day 1 to 31.
fn civil_date(days: u64) -> (u64, u8, u8) {
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z % 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u8;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u8;
    let year = yoe + era * 400 + u64::from(month <= 2);
    (year, month, day)
}

/// Lines that may wait for the access-log thread; past them a line is dropped (and said once)
/// rather than the loop waiting for a slow card.
const ACCESS_QUEUE: usize = 256;

/// Where access-log lines go.
#[derive(Debug)]
pub struct AccessLog {
    /// The file (`--access-log`), opened for each line so `logrotate` needs no signal; `None`:
    /// the log (the journal under systemd), target `access`.
    file: Option<PathBuf>,
    /// The thread that appends to the file, started with the first line: the loop never
    /// waits on the disk (`None` inside: it could not start).
    writer: Option<Option<SyncSender<String>>>,
    /// Lines dropped because the queue was full, since the last one that went through.
    dropped: u64,
}

impl AccessLog {
    /// Lines to `file`, or to the log without one.
    pub fn new(file: Option<PathBuf>) -> Self {
        Self {
            file,
            writer: None,
            dropped: 0,
        }
    }

    /// Hands `line` (without its newline) to the file's thread, or writes it to the log.
    pub fn write(&mut self, line: &str) {
        let Some(path) = &self.file else {
            info!(target: "access", "{line}");
            return;
        };
        let writer = self
            .writer
            .get_or_insert_with(|| spawn_writer(path.clone()));
        let Some(sender) = writer else {
            return;
        };
        match sender.try_send(format!("{line}\n")) {
            Ok(()) => self.dropped = 0,
            Err(_) => {
                if self.dropped == 0 {
                    warn!(
                        "access log {}: the disk is behind; lines are dropped",
                        path.display()
                    );
                }
                self.dropped += 1;
            }
        }
    }
}

/// The access log's thread: appends each line, reopening the file for each (logrotate), and
/// says a failure once until a line goes through again.
fn spawn_writer(path: PathBuf) -> Option<SyncSender<String>> {
    let (sender, lines) = std::sync::mpsc::sync_channel::<String>(ACCESS_QUEUE);
    let spawned = std::thread::Builder::new()
        .name("zerocast-access-log".into())
        .spawn(move || {
            let mut failing = false;
            for line in lines {
                let written = std::fs::OpenOptions::new()
                    .append(true)
                    .create(true)
                    .open(&path)
                    .and_then(|mut f| f.write_all(line.as_bytes()));
                match written {
                    Ok(()) => failing = false,
                    Err(e) if !failing => {
                        warn!("access log {}: {e}; its lines are lost", path.display());
                        failing = true;
                    }
                    Err(_) => {}
                }
            }
        });
    match spawned {
        Ok(_) => Some(sender),
        Err(e) => {
            warn!("access log: no thread to write it ({e}); its lines are lost");
            None
        }
    }
}

/// Registers of the unique-address sketch: 1 KiB, a standard error of 1.04/√1024 ≈ 3.3 %, and
/// exact in practice for a few dozen addresses (linear counting).
const REGISTERS: usize = 1024;
const REGISTER_BITS: u32 = REGISTERS.trailing_zeros();

/// A HyperLogLog sketch of the distinct addresses seen (Flajolet et al. 2007, with linear
/// counting for small numbers): a fixed 1 KiB however many listeners come. Hashed with a
/// random key, so nobody can choose addresses that collide.
#[derive(Debug)]
pub struct UniqueSketch {
    registers: Box<[u8; REGISTERS]>,
    hasher: RandomState,
}

impl UniqueSketch {
    /// An empty sketch.
    pub fn new() -> Self {
        Self {
            registers: Box::new([0; REGISTERS]),
            hasher: RandomState::new(),
        }
    }

    /// Counts `addr`.
    pub fn add(&mut self, addr: IpAddr) {
        let hash = self.hasher.hash_one(addr);
        let index = (hash & (REGISTERS as u64 - 1)) as usize;
        let rest = hash >> REGISTER_BITS;
        // The rank: the position of the first 1 bit in the remaining 54 bits, from 1.
        let rank = (rest.trailing_zeros().min(64 - REGISTER_BITS) + 1) as u8;
        self.registers[index] = self.registers[index].max(rank);
    }

    /// The estimated number of distinct addresses.
    pub fn estimate(&self) -> u64 {
        let m = REGISTERS as f64;
        let zeros = self.registers.iter().filter(|&&r| r == 0).count();
        let sum: f64 = self
            .registers
            .iter()
            .map(|&r| 2f64.powi(-i32::from(r)))
            .sum();
        let alpha = 0.7213 / (1.0 + 1.079 / m);
        let raw = alpha * m * m / sum;
        let estimate = if raw <= 2.5 * m && zeros > 0 {
            m * (m / zeros as f64).ln()
        } else {
            raw
        };
        estimate.round() as u64
    }

    /// Forgets every address.
    pub fn clear(&mut self) {
        self.registers.fill(0);
    }
}

impl Default for UniqueSketch {
    fn default() -> Self {
        Self::new()
    }
}

/// Past days whose counts are kept (newest first; a month, a few hundred bytes).
pub const DAYS_KEPT: usize = 31;

/// The day's listeners (UTC days): the most at once, the distinct addresses, and the time
/// listened by sessions that ended today (a session counts on the day it ends). Starts anew at
/// midnight UTC; the days before are kept as counts, [`DAYS_KEPT`] of them.
#[derive(Debug, Default)]
pub struct Audience {
    /// Days since the Unix epoch of the counts.
    day: u64,
    peak: usize,
    unique: UniqueSketch,
    /// Milliseconds listened by the sessions that ended today.
    ended_ms: u64,
    /// Milliseconds listened by every session that ended since start.
    total_ms: u64,
    /// The days before, newest first.
    past: std::collections::VecDeque<DayStat>,
}

/// One day's counts.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct DayStat {
    /// The day, `YYYY-MM-DD` (UTC).
    pub day: String,
    /// The most listeners at once.
    pub peak: usize,
    /// Distinct listener addresses (estimated, see [`UniqueSketch`]).
    pub unique_addresses: u64,
    /// Hours listened by the sessions that ended that day.
    pub listening_hours: f64,
}

/// What [`Audience::stat`] reports.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct AudienceStat {
    /// The day, `YYYY-MM-DD` (UTC).
    pub day: String,
    /// The most listeners at once today.
    pub peak: usize,
    /// Distinct listener addresses today (estimated, see [`UniqueSketch`]).
    pub unique_addresses: u64,
    /// Hours listened today: the ended sessions and the time so far of those still on.
    pub listening_hours: f64,
    /// Seconds listened since start, every session's, ended or not.
    pub listening_seconds_total: u64,
    /// The days before since start, newest first, at most [`DAYS_KEPT`].
    pub past_days: Vec<DayStat>,
}

/// `YYYY-MM-DD` of day `days` since the Unix epoch.
fn iso_date(days: u64) -> String {
    let (year, month, day) = civil_date(days);
    format!("{year:04}-{month:02}-{day:02}")
}

impl Audience {
    /// The counts of the day recorded, if anyone listened.
    fn recorded(&self) -> Option<DayStat> {
        (self.peak > 0 || self.ended_ms > 0).then(|| DayStat {
            day: iso_date(self.day),
            peak: self.peak,
            unique_addresses: self.unique.estimate(),
            listening_hours: self.ended_ms as f64 / 3_600_000.0,
        })
    }

    fn roll(&mut self, unix_s: u64) {
        let day = unix_s / 86_400;
        if day != self.day {
            if let Some(done) = self.recorded() {
                self.past.push_front(done);
                self.past.truncate(DAYS_KEPT);
            }
            self.day = day;
            self.peak = 0;
            self.unique.clear();
            self.ended_ms = 0;
        }
    }

    /// A listener from `addr` was let in; `listeners` are connected now, it included.
    pub fn joined(&mut self, addr: IpAddr, listeners: usize, unix_s: u64) {
        self.roll(unix_s);
        self.peak = self.peak.max(listeners);
        self.unique.add(addr);
    }

    /// A listener left after `ms`.
    pub fn left(&mut self, ms: u64, unix_s: u64) {
        self.roll(unix_s);
        self.ended_ms += ms;
        self.total_ms += ms;
    }

    /// The counts at `unix_s`, with `live_ms` listened so far by the sessions still on (a day
    /// nobody joined or left yet has only those).
    pub fn stat(&self, live_ms: u64, unix_s: u64) -> AudienceStat {
        let today = unix_s / 86_400;
        let mut past_days: Vec<DayStat> = self.past.iter().cloned().collect();
        let (peak, unique, ended_ms) = if today == self.day {
            (self.peak, self.unique.estimate(), self.ended_ms)
        } else {
            // The day recorded is over, though nobody came since to start the next.
            if let Some(done) = self.recorded() {
                past_days.insert(0, done);
                past_days.truncate(DAYS_KEPT);
            }
            (0, 0, 0)
        };
        AudienceStat {
            day: iso_date(today),
            peak,
            unique_addresses: unique,
            listening_hours: (ended_ms + live_ms) as f64 / 3_600_000.0,
            listening_seconds_total: (self.total_ms + live_ms) / 1000,
            past_days,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn listening() -> Listening {
        Listening {
            since: Instant::from_millis(0),
            until: None,
            app: "live".into(),
            name: "audio".into(),
            request: "GET /live/audio.mp3 HTTP/1.1".into(),
            referer: None,
            agent: Some("VLC/3.0.20 \"x\"\n\u{e9}".into()),
        }
    }

    #[test]
    fn the_line_is_icecasts_combined_format() {
        // 2026-12-07 13:39:42 UTC.
        let line = access_line(
            "192.168.1.7".parse().unwrap(),
            1_796_650_782,
            &listening(),
            200,
            12345,
            61,
        );
        assert_eq!(
            line,
            "192.168.1.7 - - [07/Dec/2026:13:39:42 +0000] \"GET /live/audio.mp3 HTTP/1.1\" 200 \
             12345 \"-\" \"VLC/3.0.20 \\\"x\\\"\\x0a\\xc3\\xa9\" 61"
        );
    }

    #[test]
    fn dates_are_gregorian() {
        assert_eq!(civil_date(0), (1970, 1, 1));
        assert_eq!(civil_date(11_016), (2000, 2, 29));
        assert_eq!(civil_date(19_782), (2024, 2, 29));
        assert_eq!(clf_time(951_868_799), "29/Feb/2000:23:59:59 +0000");
    }

    #[test]
    fn headers_are_cut_on_a_character() {
        let long = "é".repeat(MAX_HEADER_KEPT);
        let cut = kept(&long);
        assert!(cut.len() <= MAX_HEADER_KEPT && cut.chars().all(|c| c == 'é'));
    }

    /// Small counts are exact, large ones within a few per cent, in the same 1 KiB.
    #[test]
    fn the_sketch_counts_distinct_addresses() {
        let mut sketch = UniqueSketch::new();
        for _ in 0..3 {
            for i in 1..=5u8 {
                sketch.add(IpAddr::from([10, 0, 0, i]));
            }
        }
        assert_eq!(sketch.estimate(), 5);
        for i in 0..100_000u32 {
            sketch.add(IpAddr::from(i.to_be_bytes()));
        }
        let e = sketch.estimate() as f64;
        println!("100005 distinct addresses estimated as {e}");
        assert!((e - 100_005.0).abs() / 100_005.0 < 0.1, "{e}");
        sketch.clear();
        assert_eq!(sketch.estimate(), 0);
    }

    #[test]
    fn the_day_starts_anew_at_midnight() {
        let mut a = Audience::default();
        let day = 20_000 * 86_400;
        a.joined(IpAddr::from([10, 0, 0, 1]), 1, day + 10);
        a.joined(IpAddr::from([10, 0, 0, 2]), 2, day + 20);
        a.left(3_600_000, day + 30);
        let s = a.stat(1_800_000, day + 40);
        assert_eq!((s.peak, s.unique_addresses), (2, 2));
        assert!((s.listening_hours - 1.5).abs() < 1e-9);
        assert_eq!(s.listening_seconds_total, 5400);
        let s = a.stat(0, day + 86_400);
        assert_eq!((s.peak, s.unique_addresses, s.listening_hours), (0, 0, 0.0));
        assert_eq!(s.listening_seconds_total, 3600);
        // The day before is kept, shown before the next day starts and after.
        let yesterday = DayStat {
            day: "2024-10-04".into(),
            peak: 2,
            unique_addresses: 2,
            listening_hours: 1.0,
        };
        assert_eq!(s.past_days, std::slice::from_ref(&yesterday));
        a.joined(IpAddr::from([10, 0, 0, 3]), 1, day + 86_400 + 5);
        let s = a.stat(0, day + 86_400 + 6);
        assert_eq!((s.day.as_str(), s.peak), ("2024-10-05", 1));
        assert_eq!(s.past_days, [yesterday]);
        // A month of days at most.
        for d in 2..100 {
            a.joined(IpAddr::from([10, 0, 0, 3]), 1, day + d * 86_400);
        }
        assert_eq!(a.stat(0, day + 99 * 86_400).past_days.len(), DAYS_KEPT);
    }
}
