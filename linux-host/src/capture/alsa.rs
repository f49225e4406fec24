//! ALSA capture: nonblocking, S16_LE interleaved at exactly the configured rate and channels,
//! the PCM's poll descriptors registered in mio.
//!
//! Recovery, following alsa-lib's own `snd_pcm_recover` (pcm.c) but without its blocking
//! `sleep(1)` loop on resume:
//! - overrun (`EPIPE`): `prepare` + `start`, counted for the status line;
//! - suspend (`ESTRPIPE`): `resume`, retried every 100 ms while it says `EAGAIN`, else `prepare`;
//! - anything else (`ENODEV` when a USB card is unplugged, `EIO`/`EBADFD`, the pulse plugin's
//!   `EIO` when the server or its source goes away), or no audio for [`STALL_TIMEOUT`]
//!   ([`START_TIMEOUT`] right after opening): the
//!   device is closed, silence paced by the monotonic clock keeps the stream position advancing,
//!   and the device is reopened every [`RETRY_INTERVAL`] until it is back.
//!
//! The mio registration is edge-triggered, so every wake-up drains the PCM; a periodic check
//! ([`CHECK_INTERVAL`]) also reads, so a missed edge costs latency, not audio.
//!
//! What a wake-up costs, kept small for the Pi Zero's one core: the device wakes the process
//! once per [`Format::wake_periods`] periods (`avail_min`), one `snd_pcm_readi` takes everything
//! it has into a buffer as large as the device's (a read that returns less than asked for has
//! drained it, so no second read just to see `EAGAIN`), and the sample format is checked once at
//! open instead of on every read (alsa's `io_i16` allocates and frees a `snd_pcm_hw_params_t`
//! to check it).

use std::ffi::{c_char, c_int, CStr, CString};
use std::fmt;
use std::io::{self, Write};
use std::os::fd::RawFd;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use alsa::pcm::{Access, Format as SampleFormat, HwParams, PCM};
use alsa::poll::Descriptors;
use alsa::{Direction, ValueOr};
use mio::unix::SourceFd;
use mio::{Interest, Registry};
use nix::errno::Errno;

use super::{
    source_token, CaptureError, Format, Holder, Pacer, Periods, RateSet, Sink, SourceState,
    SOURCE_TOKENS, STANDARD_RATES,
};

/// How long a freshly opened device may take to deliver its first period before it counts as
/// stalled. Longer than [`STALL_TIMEOUT`] because alsa-lib's pulse plugin, opened nonblocking,
/// delivers its first period only after about 2 s (measured with pulseaudio 16.1 and
/// alsa-plugins 1.2.7: `arecord -N -D pulse` shows the same delay; blocking mode does not).
pub const START_TIMEOUT: Duration = Duration::from_secs(5);
/// How often a lost device is reopened.
pub const RETRY_INTERVAL: Duration = Duration::from_secs(2);
/// No audio for this long while capturing counts as a lost device (a wedged USB card, a pulse
/// stream that was corked or moved away never returns an error, only nothing).
pub const STALL_TIMEOUT: Duration = Duration::from_secs(2);
/// How often the PCM is read even without a readiness event.
pub const CHECK_INTERVAL: Duration = Duration::from_millis(100);
/// How soon a suspended device's `resume` is tried again after `EAGAIN`.
const RESUME_RETRY: Duration = Duration::from_millis(100);
/// Reads per pump: bounds one loop turn (each read is up to one period).
const READS_PER_PUMP: usize = 32;
/// Device buffer, in periods beyond one wake-up's worth: enough slack that a busy Pi Zero does
/// not overrun.
const SLACK_PERIODS: usize = 7;

/// An open, running capture PCM and its registered descriptors.
struct Open {
    pcm: PCM,
    fds: Vec<RawFd>,
    last_data: Instant,
    /// Whether any audio came since the open (selects [`START_TIMEOUT`] or [`STALL_TIMEOUT`]).
    flowing: bool,
    next_check: Instant,
    resume_at: Option<Instant>,
    suspended_logged: bool,
}

enum Mode {
    Capturing(Open),
    Silence {
        pacer: Pacer,
        since: Instant,
        retry_at: Instant,
    },
}

/// An ALSA capture device that outlives unplugging.
pub struct AlsaSource {
    device: String,
    format: Format,
    periods: Periods,
    overruns: u64,
    mode: Mode,
}

impl fmt::Debug for AlsaSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AlsaSource")
            .field("device", &self.device)
            .field("state", &self.state())
            .field("position", &self.periods.position())
            .field("overruns", &self.overruns)
            .finish()
    }
}

impl AlsaSource {
    /// Opens `device` (an ALSA PCM name without the `alsa:` prefix) and starts capturing.
    /// Failing here is fatal to the caller: at start-up the user is there to read why.
    pub fn open(
        device: &str,
        format: Format,
        registry: &Registry,
        now: Instant,
    ) -> Result<Self, CaptureError> {
        route_alsa_lib_messages();
        let open = Open::new(device, format, registry, now)?;
        log::info!(
            "alsa:{device}: capturing {} Hz, {} channel(s), {} frames a period, read every {} \
             period(s)",
            format.rate,
            format.channels,
            format.period_frames,
            format.wake_periods
        );
        Ok(Self {
            device: device.to_owned(),
            format,
            periods: Periods::with_room(
                format.period_frames,
                usize::from(format.channels),
                buffer_periods(format),
            ),
            overruns: 0,
            mode: Mode::Capturing(open),
        })
    }

    /// Reads what the device has (or generates due silence and retries a lost device).
    pub fn pump(&mut self, registry: &Registry, now: Instant, sink: &mut dyn Sink) {
        let period = self.periods.frames() as u64;
        match &mut self.mode {
            Mode::Capturing(open) => {
                if let Err(why) = open.read(now, &mut self.periods, &mut self.overruns, sink) {
                    open.deregister(registry);
                    log::warn!(
                        "alsa:{}: capture lost ({why}); sending silence, retrying every {} s",
                        self.device,
                        RETRY_INTERVAL.as_secs()
                    );
                    self.mode = Mode::Silence {
                        pacer: Pacer::new(now, self.format.rate),
                        since: now,
                        retry_at: now + RETRY_INTERVAL,
                    };
                }
            }
            Mode::Silence {
                pacer,
                since,
                retry_at,
            } => {
                let (frames, restarted) = pacer.take_due(now, period);
                if restarted {
                    log::warn!(
                        "alsa:{}: silence clock restarted after a stall",
                        self.device
                    );
                }
                self.periods.push_silence(frames, sink);
                if now >= *retry_at {
                    match Open::new(&self.device, self.format, registry, now) {
                        Ok(open) => {
                            log::info!(
                                "alsa:{}: device back after {:.1} s of silence; capturing",
                                self.device,
                                now.saturating_duration_since(*since).as_secs_f64()
                            );
                            self.mode = Mode::Capturing(open);
                        }
                        Err(e) => {
                            log::debug!("alsa:{}: still unavailable: {e}", self.device);
                            *retry_at = now + RETRY_INTERVAL;
                        }
                    }
                }
            }
        }
    }

    /// The next time [`Self::pump`] has work without a readiness event.
    pub fn deadline(&self) -> Instant {
        match &self.mode {
            Mode::Capturing(open) => open
                .resume_at
                .map_or(open.next_check, |r| r.min(open.next_check)),
            Mode::Silence {
                pacer, retry_at, ..
            } => pacer.next_due(self.format.wake_frames()).min(*retry_at),
        }
    }

    /// Capturing or sending silence.
    pub fn state(&self) -> SourceState {
        match self.mode {
            Mode::Capturing(_) => SourceState::Capturing,
            Mode::Silence { .. } => SourceState::Silence,
        }
    }

    /// Overruns recovered so far.
    pub fn overruns(&self) -> u64 {
        self.overruns
    }

    /// Frames delivered so far.
    pub fn position(&self) -> u64 {
        self.periods.position()
    }

    /// Deregisters the device's descriptors (the PCM is closed on drop).
    pub fn close(&mut self, registry: &Registry) {
        if let Mode::Capturing(open) = &mut self.mode {
            open.deregister(registry);
        }
    }
}

/// The positive errno of an ALSA error (alsa 0.9 keeps the negative return code).
fn errno(e: &alsa::Error) -> i32 {
    e.errno().abs()
}

fn alsa_err(call: &'static str) -> impl Fn(alsa::Error) -> CaptureError {
    move |e| CaptureError::Alsa {
        call,
        errno: errno(&e),
    }
}

impl Open {
    fn new(
        device: &str,
        format: Format,
        registry: &Registry,
        now: Instant,
    ) -> Result<Self, CaptureError> {
        let name = CString::new(device).map_err(|_| CaptureError::NoSuchDevice)?;
        let pcm = PCM::open(&name, Direction::Capture, true).map_err(|e| {
            match Errno::from_raw(errno(&e)) {
                Errno::EBUSY => CaptureError::Busy {
                    holder: find_holder(&node_matcher(device)),
                },
                // EINVAL: alsa-lib's answer to a card index out of range (hw:97,0).
                Errno::ENOENT | Errno::ENODEV | Errno::ENXIO | Errno::EINVAL => {
                    CaptureError::NoSuchDevice
                }
                Errno::EACCES | Errno::EPERM => CaptureError::PermissionDenied,
                _ => alsa_err("snd_pcm_open")(e),
            }
        })?;
        configure(&pcm, format)?;
        // The one check that reads and writes are S16_LE (see `read`).
        drop(
            pcm.io_i16()
                .map_err(alsa_err("snd_pcm_hw_params_current"))?,
        );
        pcm.prepare().map_err(alsa_err("snd_pcm_prepare"))?;
        pcm.start().map_err(alsa_err("snd_pcm_start"))?;
        let pollfds = pcm.get().map_err(alsa_err("snd_pcm_poll_descriptors"))?;
        if pollfds.len() > SOURCE_TOKENS.len() {
            return Err(CaptureError::TooManyPollDescriptors {
                count: pollfds.len(),
            });
        }
        let mut open = Self {
            pcm,
            fds: Vec::with_capacity(pollfds.len()),
            last_data: now,
            flowing: false,
            next_check: now + CHECK_INTERVAL,
            resume_at: None,
            suspended_logged: false,
        };
        for (i, p) in pollfds.iter().enumerate() {
            // The pulse plugin may ask for POLLOUT on its wake-up descriptor; hw asks POLLIN.
            let interest = if p.events & libc_pollout() != 0 {
                Interest::WRITABLE
            } else {
                Interest::READABLE
            };
            if let Err(e) = registry.register(&mut SourceFd(&p.fd), source_token(i), interest) {
                open.deregister(registry);
                return Err(CaptureError::io("registering the PCM poll descriptors", &e));
            }
            open.fds.push(p.fd);
        }
        Ok(open)
    }

    /// Drains the PCM into `periods`. `Err` means the device is lost.
    fn read(
        &mut self,
        now: Instant,
        periods: &mut Periods,
        overruns: &mut u64,
        sink: &mut dyn Sink,
    ) -> Result<(), CaptureError> {
        self.next_check = now + CHECK_INTERVAL;
        if self.resume_at.is_some_and(|t| now < t) {
            return Ok(());
        }
        self.resume_at = None;
        // SAFETY: `configure` set S16_LE (i16) and `Open::new` checked that the device took it
        // (`io_i16`); this is the only IO object of the PCM and it lives for this call only.
        #[allow(unsafe_code)]
        let io = unsafe { self.pcm.io_unchecked::<i16>() };
        let channels = periods.channels();
        for _ in 0..READS_PER_PUMP {
            let room = periods.free().len() / channels;
            match io.readi(periods.free()) {
                Ok(0) => break,
                Ok(frames) => {
                    self.last_data = now;
                    self.flowing = true;
                    periods.commit(frames * channels, sink);
                    if frames < room {
                        // Less than asked for: the device is drained until the next wake-up.
                        break;
                    }
                }
                Err(e) => match Errno::from_raw(errno(&e)) {
                    Errno::EAGAIN => break,
                    Errno::EPIPE => {
                        *overruns += 1;
                        if *overruns == 1 {
                            log::warn!(
                                "capture overrun: audio was lost (the loop was late); \
                                 further overruns are counted in the status line"
                            );
                        } else {
                            log::debug!("capture overrun #{overruns}");
                        }
                        self.pcm.prepare().map_err(alsa_err("snd_pcm_prepare"))?;
                        self.pcm.start().map_err(alsa_err("snd_pcm_start"))?;
                    }
                    Errno::ESTRPIPE => {
                        if !self.suspended_logged {
                            log::info!("capture device suspended; resuming");
                            self.suspended_logged = true;
                        }
                        match self.pcm.resume().map_err(|e| Errno::from_raw(errno(&e))) {
                            Ok(()) => {}
                            Err(Errno::EAGAIN) => {
                                self.resume_at = Some(now + RESUME_RETRY);
                                // While resuming, the stall timer must not run out.
                                self.last_data = now;
                                return Ok(());
                            }
                            // The driver cannot resume (ENOSYS): restart the stream instead.
                            Err(_) => {
                                self.pcm.prepare().map_err(alsa_err("snd_pcm_prepare"))?;
                                self.pcm.start().map_err(alsa_err("snd_pcm_start"))?;
                            }
                        }
                    }
                    _ => return Err(alsa_err("snd_pcm_readi")(e)),
                },
            }
        }
        let limit = if self.flowing {
            STALL_TIMEOUT
        } else {
            START_TIMEOUT
        };
        if now.saturating_duration_since(self.last_data) >= limit {
            return Err(CaptureError::Stalled {
                secs: limit.as_secs() as u8,
            });
        }
        Ok(())
    }

    fn deregister(&mut self, registry: &Registry) {
        for fd in self.fds.drain(..) {
            // Fails only if not registered, which is the state wanted.
            let _ = registry.deregister(&mut SourceFd(&fd));
        }
    }
}

fn libc_pollout() -> i16 {
    nix::poll::PollFlags::POLLOUT.bits()
}

/// Sets access, format, channels and rate exactly; period and buffer as near as the device allows.
fn configure(pcm: &PCM, format: Format) -> Result<(), CaptureError> {
    let hwp = HwParams::any(pcm).map_err(alsa_err("snd_pcm_hw_params_any"))?;
    hwp.set_access(Access::RWInterleaved)
        .map_err(alsa_err("snd_pcm_hw_params_set_access"))?;
    hwp.set_format(SampleFormat::S16LE)
        .map_err(|_| CaptureError::FormatUnsupported)?;
    let channels = u32::from(format.channels);
    if hwp.set_channels(channels).is_err() {
        return Err(CaptureError::ChannelsUnsupported {
            requested: channels,
            min: hwp.get_channels_min().unwrap_or(0),
            max: hwp.get_channels_max().unwrap_or(0),
        });
    }
    if hwp.set_rate(format.rate, ValueOr::Nearest).is_err() {
        let offered = STANDARD_RATES
            .iter()
            .enumerate()
            .filter(|(_, r)| hwp.test_rate(**r).is_ok())
            .fold(0u16, |mask, (i, _)| mask | (1 << i));
        return Err(CaptureError::RateUnsupported {
            requested: format.rate,
            min: hwp.get_rate_min().unwrap_or(0),
            max: hwp.get_rate_max().unwrap_or(0),
            offered: RateSet(offered),
        });
    }
    let period = alsa::pcm::Frames::try_from(format.period_frames).unwrap_or(i64::MAX as _);
    hwp.set_period_size_near(period, ValueOr::Nearest)
        .map_err(alsa_err("snd_pcm_hw_params_set_period_size_near"))?;
    hwp.set_buffer_size_near(period.saturating_mul(buffer_periods(format) as alsa::pcm::Frames))
        .map_err(alsa_err("snd_pcm_hw_params_set_buffer_size_near"))?;
    pcm.hw_params(&hwp).map_err(alsa_err("snd_pcm_hw_params"))?;
    let swp = pcm
        .sw_params_current()
        .map_err(alsa_err("snd_pcm_sw_params_current"))?;
    // Wake when a wake-up's worth of our periods is there, whatever period size the hardware
    // chose: no earlier, as the audio would only wait in zerocast for the send instead.
    let wake = alsa::pcm::Frames::try_from(format.wake_frames()).unwrap_or(period);
    swp.set_avail_min(wake)
        .map_err(alsa_err("snd_pcm_sw_params_set_avail_min"))?;
    pcm.sw_params(&swp).map_err(alsa_err("snd_pcm_sw_params"))?;
    Ok(())
}

/// The device buffer (and the read buffer), in periods.
fn buffer_periods(format: Format) -> usize {
    format.wake_periods.max(1) + SLACK_PERIODS
}

/// Which `/dev/snd` nodes a device name refers to, for naming who holds a busy device:
/// `hw:1,0`, `plughw:CARD=Device,DEV=0`, `hw:Device` name one capture node; anything else
/// (dsnoop, default) may be any capture node.
fn node_matcher(device: &str) -> impl Fn(&Path) -> bool {
    let node = device
        .strip_prefix("hw:")
        .or_else(|| device.strip_prefix("plughw:"))
        .and_then(|rest| {
            let mut card = None;
            let mut dev = 0u32;
            for (i, part) in rest.split(',').enumerate() {
                let (key, value) = part.split_once('=').unwrap_or(match i {
                    0 => ("CARD", part),
                    _ => ("DEV", part),
                });
                match key {
                    "CARD" => {
                        card = value.parse::<u32>().ok().or_else(|| {
                            let c = CString::new(value).ok()?;
                            alsa::card::Card::from_str(&c)
                                .ok()
                                .and_then(|c| u32::try_from(c.get_index()).ok())
                        })
                    }
                    "DEV" => dev = value.parse().ok()?,
                    _ => {}
                }
            }
            Some(PathBuf::from(format!("/dev/snd/pcmC{}D{dev}c", card?)))
        });
    move |path: &Path| match &node {
        Some(n) => path == n,
        None => path
            .to_str()
            .is_some_and(|p| p.starts_with("/dev/snd/pcmC") && p.ends_with('c')),
    }
}

/// The first other process with a file descriptor open on a path `matches` accepts, found the
/// way `fuser` does: by reading the `/proc/PID/fd/*` links.
pub fn find_holder(matches: &dyn Fn(&Path) -> bool) -> Option<Holder> {
    let me = std::process::id();
    let procs = std::fs::read_dir("/proc").ok()?;
    for entry in procs.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|s| s.parse::<u32>().ok())
        else {
            continue;
        };
        if pid == me {
            continue;
        }
        let Ok(fds) = std::fs::read_dir(entry.path().join("fd")) else {
            continue;
        };
        let holds = fds
            .flatten()
            .any(|fd| std::fs::read_link(fd.path()).is_ok_and(|target| matches(&target)));
        if holds {
            let comm = std::fs::read_to_string(entry.path().join("comm")).unwrap_or_default();
            return Some(Holder::new(pid, comm.trim_end()));
        }
    }
    None
}

/// Sends alsa-lib's own error messages (it prints "ALSA lib pcm_pulse.c:758:(pulse_prepare) ..."
/// to stderr on every failed open, i.e. every retry while a device is gone) to the debug log
/// instead. Thread-local in alsa-lib (>= 1.1.6), and the loop is one thread.
#[allow(unsafe_code)]
fn route_alsa_lib_messages() {
    /// alsa-lib's `snd_local_error_handler_t`; `fmt` is logged unexpanded (expanding a
    /// `va_list` is not possible in stable Rust), which still says what failed.
    unsafe extern "C" fn handler(
        file: *const c_char,
        line: c_int,
        func: *const c_char,
        err: c_int,
        fmt: *const c_char,
        _args: *mut alsa_sys::__va_list_tag,
    ) {
        let text = |p: *const c_char| {
            if p.is_null() {
                ""
            } else {
                // SAFETY: alsa-lib passes NUL-terminated static strings (__FILE__, __func__, the
                // format literal) that outlive this call.
                unsafe { CStr::from_ptr(p) }.to_str().unwrap_or("?")
            }
        };
        log::debug!(
            "alsa-lib {}:{} {}: {} (errno {err})",
            text(file),
            line,
            text(func),
            text(fmt)
        );
    }
    // SAFETY: `handler` has exactly the signature of `snd_local_error_handler_t` (as alsa-sys
    // declares it), never unwinds (logging ignores write errors), and is a plain function that
    // lives as long as the program.
    unsafe {
        alsa_sys::snd_lib_error_set_local(Some(handler));
    }
}

/// Writes the capture devices a user can pass to `--source alsa:NAME`: alsa-lib's device hints
/// (name and description) and, per sound card, its capture devices as `hw:` and `plughw:`.
pub fn list_devices(out: &mut dyn Write) -> io::Result<()> {
    route_alsa_lib_messages();
    writeln!(out, "ALSA capture devices (pass as --source alsa:NAME):")?;
    let mut any = false;
    if let Ok(hints) = alsa::device_name::HintIter::new_str(None, "pcm") {
        for hint in hints {
            // No IOID means both directions.
            if hint.direction == Some(Direction::Playback) {
                continue;
            }
            let Some(name) = hint.name else { continue };
            any = true;
            let desc = hint.desc.unwrap_or_default().replace('\n', " - ");
            writeln!(out, "  alsa:{name}\n      {desc}")?;
        }
    }
    if !any {
        writeln!(out, "  (none: alsa-lib lists no capture PCMs)")?;
    }
    writeln!(out, "\nSound cards with capture devices:")?;
    let mut cards = 0;
    for card in alsa::card::Iter::new().flatten() {
        let Ok(ctl) = alsa::ctl::Ctl::from_card(&card, false) else {
            continue;
        };
        let index = card.get_index();
        let (id, name) = match ctl.card_info() {
            Ok(info) => (
                info.get_id().unwrap_or("?").to_owned(),
                info.get_name().unwrap_or("?").to_owned(),
            ),
            Err(_) => ("?".to_owned(), "?".to_owned()),
        };
        for dev in alsa::ctl::DeviceIter::new(&ctl) {
            let Ok(dev_u) = u32::try_from(dev) else {
                continue;
            };
            let Ok(info) = ctl.pcm_info(dev_u, 0, Direction::Capture) else {
                continue; // a playback-only device
            };
            cards += 1;
            writeln!(
                out,
                "  card {index} ({id}: {name}), device {dev}: {}\n      alsa:hw:{index},{dev}  \
                 alsa:plughw:{index},{dev}  alsa:hw:CARD={id},DEV={dev}  \
                 alsa:plughw:CARD={id},DEV={dev}",
                info.get_name().unwrap_or("?")
            )?;
        }
    }
    if cards == 0 {
        writeln!(
            out,
            "  (none found: is the USB sound card plugged in? see /proc/asound/cards)"
        )?;
    }
    writeln!(
        out,
        "\nhw: gives the card as it is (exact rate and channels or an error); plughw: lets \
         alsa-lib convert rate, channels and format."
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn device_names_to_nodes() {
        let m = node_matcher("hw:1,0");
        assert!(m(Path::new("/dev/snd/pcmC1D0c")));
        assert!(!m(Path::new("/dev/snd/pcmC1D0p")));
        assert!(!m(Path::new("/dev/snd/pcmC0D0c")));
        let m = node_matcher("plughw:CARD=2,DEV=3");
        assert!(m(Path::new("/dev/snd/pcmC2D3c")));
        let m = node_matcher("plughw:0");
        assert!(m(Path::new("/dev/snd/pcmC0D0c")));
        // Unknown card names and virtual devices match any capture node.
        for any in ["dsnoop:0", "default", "hw:CARD=NoSuchCardHere,DEV=0"] {
            let m = node_matcher(any);
            assert!(m(Path::new("/dev/snd/pcmC5D1c")), "{any}");
            assert!(!m(Path::new("/dev/snd/pcmC5D1p")), "{any}");
            assert!(!m(Path::new("/dev/null")), "{any}");
        }
    }

    #[test]
    fn finds_the_process_holding_a_node() {
        let dir = std::env::temp_dir().join(format!("zerocast-holder-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let node = dir.join("pcmC9D0c");
        std::fs::write(&node, b"").unwrap();
        let script = format!("exec 3<'{}'; exec sleep 10", node.display());
        let mut child = std::process::Command::new("sh")
            .args(["-c", &script])
            .spawn()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(5);
        let found = loop {
            let found = find_holder(&|p| p == node);
            if found.is_some_and(|h| h.comm() == "sleep") || Instant::now() > deadline {
                break found;
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        child.kill().unwrap();
        child.wait().unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
        let holder = found.expect("holder found");
        assert_eq!(holder.pid, child.id());
        assert_eq!(holder.comm(), "sleep");
    }

    #[test]
    fn opening_a_missing_device_says_so() {
        let poll = mio::Poll::new().unwrap();
        let format = Format {
            rate: 44100,
            channels: 2,
            period_frames: 882,
            wake_periods: 1,
        };
        for name in [
            "hw:9,0",
            "hw:97,0",
            "plughw:CARD=NoSuchCard,DEV=0",
            "nosuchpcm",
        ] {
            let err = AlsaSource::open(name, format, poll.registry(), Instant::now()).unwrap_err();
            assert_eq!(err, CaptureError::NoSuchDevice, "{name}");
            assert!(err.to_string().contains("zerocast devices"));
        }
    }
}
