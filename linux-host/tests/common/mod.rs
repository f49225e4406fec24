//! Shared support for zerocast's end-to-end tests: start a server, run real RTMP players against it
//! and judge what they decoded by its content.
//!
//! Data flow of one check: [`server::start_server`] (nginx-rtmp + an ffmpeg publisher as the
//! baseline, or the zerocast binary) → [`players::play`] (ffmpeg, rtmpdump, VLC, GStreamer write
//! 16-bit WAV) → [`wav::Wav`] → [`analysis::analyze_tone`] (frequency, level, duration, gaps,
//! phase jumps). [`process`] bounds every child process and wait in time and stops what it starts.
//!
//! The player command lines are the ones measured to work in /work/shared/protocol-notes.md
//! section 4 ("Headless commands that worked").
//!
//! Each integration-test crate that declares `mod common;` compiles all of this and uses a
//! subset, hence the crate-level `dead_code` allowance (the pattern the Rust book's "Submodules in
//! Integration Tests" describes).
#![allow(dead_code)]

pub mod analysis;
pub mod capture;
pub mod check;
pub mod flv;
pub mod http;
pub mod live;
pub mod matrix;
pub mod players;
pub mod process;
pub mod pulse;
pub mod rtmp_client;
pub mod rtmp_player;
pub mod server;
pub mod wav;

use std::fmt;
use std::fs;
use std::io;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

/// Why a harness step failed; printed in full when a test returns it.
pub enum HarnessError {
    /// A file or socket operation failed.
    Io {
        /// What was being done, e.g. "create /tmp/x".
        what: String,
        /// The underlying error.
        source: io::Error,
    },
    /// An external program (or file it needs) is not installed and `CI` is set.
    ToolMissing {
        /// Program name or path.
        tool: String,
    },
    /// Something did not happen within its time limit.
    Timeout {
        /// What was awaited.
        what: String,
        /// The limit that passed.
        after: Duration,
    },
    /// A process misbehaved or produced no usable output.
    Failed {
        /// What failed.
        what: String,
        /// Exit status, output log tail or other evidence.
        detail: String,
    },
    /// A player's output is not a usable WAV file.
    Wav {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        error: wav::WavError,
    },
    /// A recording holds no analysable tone.
    Analysis {
        /// The file.
        path: PathBuf,
        /// What is missing.
        error: analysis::AnalysisError,
    },
}

impl HarnessError {
    /// Wraps an I/O error with what was being done.
    pub fn io(what: impl Into<String>, source: io::Error) -> Self {
        HarnessError::Io {
            what: what.into(),
            source,
        }
    }
}

impl fmt::Display for HarnessError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HarnessError::Io { what, source } => write!(f, "{what}: {source}"),
            HarnessError::ToolMissing { tool } => {
                write!(f, "required tool {tool} is not installed (CI is set)")
            }
            HarnessError::Timeout { what, after } => {
                write!(f, "timed out after {after:?} waiting for {what}")
            }
            HarnessError::Failed { what, detail } => write!(f, "{what}: {detail}"),
            HarnessError::Wav { path, error } => write!(f, "{}: {error}", path.display()),
            HarnessError::Analysis { path, error } => write!(f, "{}: {error}", path.display()),
        }
    }
}

/// `Debug` shows the readable message: a test returning `Err` prints its error with `{:?}`.
impl fmt::Debug for HarnessError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// Checks that every tool is installed: a name containing `/` is a file path, anything else a
/// program looked up in `PATH`.
///
/// Returns `Ok(true)` when all are present. When one is missing the test must not pass silently
/// on CI: with `CI` set this is [`HarnessError::ToolMissing`]; without it the test is skipped
/// (`Ok(false)`, with a note on stderr) so a developer machine without VLC still runs the rest.
pub fn tools_available(tools: &[&str]) -> Result<bool, HarnessError> {
    let missing = tools.iter().find(|tool| !tool_exists(tool));
    match missing {
        None => Ok(true),
        Some(tool) if std::env::var_os("CI").is_some() => Err(HarnessError::ToolMissing {
            tool: (*tool).to_owned(),
        }),
        Some(tool) => {
            eprintln!("skipping: {tool} is not installed (set CI to make this a failure)");
            Ok(false)
        }
    }
}

fn tool_exists(tool: &str) -> bool {
    if tool.contains('/') {
        return Path::new(tool).is_file();
    }
    std::env::var_os("PATH").is_some_and(|path| {
        std::env::split_paths(&path).any(|dir| {
            fs::metadata(dir.join(tool))
                .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        })
    })
}

/// A scratch directory removed on drop — unless the test failed (see [`TempDir::run`]), is
/// panicking, or `ZEROCAST_E2E_KEEP` is set, in which case its path is printed so the
/// recordings and logs can be inspected.
pub struct TempDir {
    path: PathBuf,
    keep: bool,
}

impl TempDir {
    /// Creates a fresh directory `zerocast-e2e-<label>-<pid>-<n>` under the system temp dir,
    /// mode 0755 so that players run as another user (VLC as `nobody`) can reach subdirectories.
    pub fn new(label: &str) -> Result<Self, HarnessError> {
        static COUNTER: AtomicUsize = AtomicUsize::new(0);
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let path =
            std::env::temp_dir().join(format!("zerocast-e2e-{label}-{}-{n}", std::process::id()));
        if path.exists() {
            fs::remove_dir_all(&path)
                .map_err(|e| HarnessError::io(format!("remove stale {}", path.display()), e))?;
        }
        make_dir(&path, 0o755)?;
        let keep = std::env::var_os("ZEROCAST_E2E_KEEP").is_some();
        Ok(TempDir { path, keep })
    }

    /// Runs `test` in a new directory labelled `label` and keeps the directory if it fails.
    pub fn run(
        label: &str,
        test: impl FnOnce(&Path) -> Result<(), HarnessError>,
    ) -> Result<(), HarnessError> {
        let mut dir = TempDir::new(label)?;
        let result = test(dir.path());
        dir.keep |= result.is_err();
        result
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        if self.keep || std::thread::panicking() {
            eprintln!("kept test files in {}", self.path.display());
        } else if let Err(e) = fs::remove_dir_all(&self.path) {
            eprintln!("could not remove {}: {e}", self.path.display());
        }
    }
}

/// Creates `path` (and missing parents) and sets its permission bits to `mode` exactly
/// (not filtered by the umask).
pub fn make_dir(path: &Path, mode: u32) -> Result<(), HarnessError> {
    fs::create_dir_all(path)
        .map_err(|e| HarnessError::io(format!("create {}", path.display()), e))?;
    fs::set_permissions(path, fs::Permissions::from_mode(mode))
        .map_err(|e| HarnessError::io(format!("chmod {}", path.display()), e))
}

/// Runs a Python 3 `script` with `input` on its standard input; its standard output, or its
/// error output as the failure (the tests parse XML, JSON and Prometheus text with Python's
/// own parsers).
pub fn python(script: &str, input: &str) -> Result<String, HarnessError> {
    use std::io::Write;
    use std::process::{Command, Stdio};
    let mut child = Command::new("python3")
        .args(["-c", script])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| HarnessError::io("start python3", e))?;
    if let Some(mut stdin) = child.stdin.take() {
        stdin
            .write_all(input.as_bytes())
            .map_err(|e| HarnessError::io("write to python3", e))?;
    }
    let out = child
        .wait_with_output()
        .map_err(|e| HarnessError::io("wait for python3", e))?;
    if !out.status.success() {
        return Err(HarnessError::Failed {
            what: "python3".to_owned(),
            detail: String::from_utf8_lossy(&out.stderr).into_owned(),
        });
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}
