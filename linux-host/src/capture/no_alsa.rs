//! The `alsa` module of a build without the `alsa` feature (the static musl build for boards
//! whose OS has no glibc 2.36, docs/architecture.md "Builds for the Pi"): there is no libasound
//! to link, so `alsa:` sources fail at start with [`CaptureError::AlsaNotBuilt`], which tells
//! the user how to capture through `arecord | zerocast --source stdin` instead.
//!
//! [`AlsaSource`] is uninhabited: the rest of the program keeps one `Source` enum and one set of
//! `match` arms for both builds, and the compiler proves those arms unreachable here.

use std::io::{self, Write};
use std::time::Instant;

use mio::Registry;

use super::{CaptureError, Format, Sink, SourceState};

/// An ALSA capture device, which this build cannot open: no value of this type exists.
#[derive(Debug)]
pub enum AlsaSource {}

impl AlsaSource {
    /// Always fails: this build has no ALSA.
    pub fn open(
        _device: &str,
        _format: Format,
        _registry: &Registry,
        _now: Instant,
    ) -> Result<Self, CaptureError> {
        Err(CaptureError::AlsaNotBuilt)
    }

    /// Unreachable (no value exists).
    pub fn pump(&mut self, _registry: &Registry, _now: Instant, _sink: &mut dyn Sink) {
        match *self {}
    }

    /// Unreachable (no value exists).
    pub fn deadline(&self) -> Instant {
        match *self {}
    }

    /// Unreachable (no value exists).
    pub fn state(&self) -> SourceState {
        match *self {}
    }

    /// Unreachable (no value exists).
    pub fn overruns(&self) -> u64 {
        match *self {}
    }

    /// Unreachable (no value exists).
    pub fn position(&self) -> u64 {
        match *self {}
    }

    /// Unreachable (no value exists).
    pub fn close(&mut self, _registry: &Registry) {
        match *self {}
    }
}

/// Says that this build lists no devices, and fails so that `zerocast devices` exits non-zero.
pub fn list_devices(out: &mut dyn Write) -> io::Result<()> {
    writeln!(out, "{}", CaptureError::AlsaNotBuilt)?;
    Err(io::Error::new(
        io::ErrorKind::Unsupported,
        "no ALSA in this build",
    ))
}
