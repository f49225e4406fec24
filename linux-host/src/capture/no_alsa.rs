//! `alsa:DEVICE` in a build without the `alsa` feature (the static musl build for the Pi, which
//! has no libasound to link): the interface of the real module, every device refused at open.

use std::io::{self, Write};
use std::time::{Duration, Instant};

use mio::Registry;

use super::{CaptureError, Format, Sink, SourceState};

/// As in the ALSA build.
pub const START_TIMEOUT: Duration = Duration::from_secs(5);
/// As in the ALSA build.
pub const RETRY_INTERVAL: Duration = Duration::from_secs(2);
/// As in the ALSA build.
pub const STALL_TIMEOUT: Duration = Duration::from_secs(2);

/// Never constructed: [`AlsaSource::open`] always fails.
#[derive(Debug)]
pub enum AlsaSource {}

impl AlsaSource {
    /// Fails: this build has no ALSA.
    pub fn open(
        _device: &str,
        _format: Format,
        _registry: &Registry,
        _now: Instant,
    ) -> Result<Self, CaptureError> {
        Err(CaptureError::NoSuchDevice)
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

/// Says that this build has no ALSA.
pub fn list_devices(out: &mut dyn Write) -> io::Result<()> {
    writeln!(
        out,
        "this zerocast was built without ALSA (no `alsa` feature): only --source stdin and tone"
    )
}
