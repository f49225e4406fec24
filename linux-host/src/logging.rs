//! A `log` back end writing one line per record to stderr, stamped with seconds since start on
//! the monotonic clock (not wall-clock time: a Pi Zero has no RTC and its clock jumps when NTP
//! syncs; journald adds the wall time anyway).
//!
//! Line format: `[   12.345] WARN  zerocast::capture::alsa: message`.
//!
//! When stderr is the journal (a systemd service, see [`crate::systemd::stderr_is_journal`]) the
//! line carries no time of its own (journald stamps every line) and starts with the syslog
//! priority in the form journald parses (sd-daemon(3)), so `journalctl -p warning` works:
//! `<4>zerocast::capture::alsa: message`.

use std::fmt::{self, Write as _};
use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::OnceLock;
use std::time::Instant;

use log::{LevelFilter, Log, Metadata, Record};

/// The logger; one static instance, installed by [`init`].
pub struct StderrLogger {
    start: OnceLock<Instant>,
    journal: AtomicBool,
}

static LOGGER: StderrLogger = StderrLogger {
    start: OnceLock::new(),
    journal: AtomicBool::new(false),
};

/// Errors from [`init`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LoggingError {
    /// Another logger was installed first.
    AlreadySet,
}

impl std::fmt::Display for LoggingError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::AlreadySet => f.write_str("a logger is already installed"),
        }
    }
}

impl std::error::Error for LoggingError {}

/// Installs the stderr logger with `level` as the filter. The timestamp origin is this call;
/// when stderr is the journal, lines get priority prefixes instead of timestamps.
pub fn init(level: LevelFilter) -> Result<(), LoggingError> {
    LOGGER.start.get_or_init(Instant::now);
    LOGGER
        .journal
        .store(crate::systemd::stderr_is_journal(), Ordering::Relaxed);
    log::set_logger(&LOGGER).map_err(|_| LoggingError::AlreadySet)?;
    log::set_max_level(level);
    Ok(())
}

/// Formats one record as a full line (newline included).
fn format_line(secs: f64, record: &Record<'_>) -> String {
    format!(
        "[{secs:9.3}] {:<5} {}: {}\n",
        record.level(),
        record.target(),
        record.args()
    )
}

/// Formats one record for the journal: syslog priority prefix, no timestamp.
fn format_journal_line(record: &Record<'_>) -> String {
    let priority = match record.level() {
        log::Level::Error => 3,
        log::Level::Warn => 4,
        log::Level::Info => 6,
        log::Level::Debug | log::Level::Trace => 7,
    };
    format!("<{priority}>{}: {}\n", record.target(), record.args())
}

impl Log for StderrLogger {
    fn enabled(&self, metadata: &Metadata<'_>) -> bool {
        metadata.level() <= log::max_level()
    }

    fn log(&self, record: &Record<'_>) {
        if !self.enabled(record.metadata()) {
            return;
        }
        let line = if self.journal.load(Ordering::Relaxed) {
            format_journal_line(record)
        } else {
            let secs = self.start.get().map_or(0.0, |s| s.elapsed().as_secs_f64());
            format_line(secs, record)
        };
        // One write per line so lines from a child sharing stderr never interleave mid-line;
        // a failed write to stderr has nowhere to be reported, so it is dropped.
        let _ = std::io::stderr().write_all(line.as_bytes());
    }

    fn flush(&self) {
        let _ = std::io::stderr().flush();
    }
}

/// The most characters of one peer-supplied string a log line shows; the rest is cut and
/// marked with `…`. Names are at most 64 bytes; titles and refused names can be longer.
pub const PEER_TEXT_MAX: usize = 160;

/// Peer-supplied text (RTMP application and stream names, titles, anything a client sent) as a
/// log line may show it: one line that cannot pose as another. Control characters (newlines
/// above all), characters that do not print (bidirectional overrides, zero-width ones) and `\`
/// itself are written as Rust escapes (`\n`, `\u{202e}`, `\\`), a leading `<` as `\u{3c}` (the
/// journal reads `<N>` at a line's start as its priority), and the text is cut after
/// [`PEER_TEXT_MAX`] characters. Every log site that prints what a peer sent wraps it in this.
#[derive(Clone, Copy, Debug)]
pub struct Escaped<'a>(pub &'a str);

impl fmt::Display for Escaped<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, c) in self.0.chars().enumerate() {
            if i == PEER_TEXT_MAX {
                return f.write_str("…");
            }
            // `escape_debug` escapes exactly the characters that do not print (std's Unicode
            // table) and `\\`; quotes print as they are.
            let escape = c.escape_debug();
            if i == 0 && c == '<' {
                f.write_str("\\u{3c}")?;
            } else if escape.len() == 1 || matches!(c, '\'' | '"') {
                f.write_char(c)?;
            } else {
                write!(f, "{escape}")?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn peer_text_is_escaped_to_one_harmless_line() {
        let shown = |s: &str| Escaped(s).to_string();
        assert_eq!(shown("audio"), "audio");
        assert_eq!(shown("x\n<0>fake"), "x\\n<0>fake");
        assert_eq!(shown("<3>zerocast: forged"), "\\u{3c}3>zerocast: forged");
        assert_eq!(shown("a\rb\tc\u{1b}[31m"), "a\\rb\\tc\\u{1b}[31m");
        assert_eq!(shown("back\\slash"), "back\\\\slash");
        assert_eq!(shown("evil\u{202e}txt.exe"), "evil\\u{202e}txt.exe");
        assert_eq!(shown("zero\u{200b}width"), "zero\\u{200b}width");
        assert_eq!(
            shown("Café «live» 'n' \"more\""),
            "Café «live» 'n' \"more\""
        );
        assert_eq!(shown("a<b"), "a<b");
        let long = "x".repeat(PEER_TEXT_MAX + 10);
        assert_eq!(shown(&long), format!("{}…", "x".repeat(PEER_TEXT_MAX)));
        assert_eq!(shown(&long[..PEER_TEXT_MAX]), long[..PEER_TEXT_MAX]);
        for s in ["a\nb", "\u{85}", "\u{2028}", "\u{2029}", "\r"] {
            assert!(
                !shown(s)
                    .contains(|c: char| c.is_control() || matches!(c, '\u{2028}' | '\u{2029}')),
                "{s:?}"
            );
        }
    }

    #[test]
    fn line_format() {
        let line = format_line(
            12.3456,
            &Record::builder()
                .level(log::Level::Warn)
                .target("zerocast::capture")
                .args(format_args!("device lost: {}", 5))
                .build(),
        );
        assert_eq!(
            line,
            "[   12.346] WARN  zerocast::capture: device lost: 5\n"
        );
    }

    #[test]
    fn journal_line_format() {
        let record = |level| {
            format_journal_line(
                &Record::builder()
                    .level(level)
                    .target("zerocast")
                    .args(format_args!("x"))
                    .build(),
            )
        };
        assert_eq!(record(log::Level::Error), "<3>zerocast: x\n");
        assert_eq!(record(log::Level::Warn), "<4>zerocast: x\n");
        assert_eq!(record(log::Level::Info), "<6>zerocast: x\n");
        assert_eq!(record(log::Level::Trace), "<7>zerocast: x\n");
    }
}
