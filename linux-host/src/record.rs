//! Recording streams to files: FLV for every codec (like nginx-rtmp's `record all`), plus
//! `.aac` (ADTS) or `.mp3` beside it when the codec allows, rotated by stream time and size,
//! the oldest deleted past a total per directory, written so that an SD card lasts, a power cut
//! costs little and a slow, full or failing card never holds up the event loop.
//!
//! The stream feeds a [`Recorder`] what it sends its players: every audio message body with its
//! timestamp ([`Recorder::audio`]), the metadata ([`Recorder::metadata`]) and the AAC sequence
//! header ([`Recorder::sequence_header`]). Both are kept and written at the head of every file
//! (at time 0). Between messages the loop calls nothing: buffers are handed over from `audio`.
//!
//! ## Files
//! `DIR/<stream>@<n>-<UTC start>.flv` (e.g. `audio@000042-20261206T063000Z.flv`), `n` one more
//! than the highest of that stream already in `DIR`, so names sort by age even when the Pi's
//! clock (no RTC) jumps at NTP sync. Stream names are letters, digits, `_`, `-` and `.` (the
//! hub's rule), never `@`: the name before the first `@` is the stream's exactly, so `a-b` and
//! `a_b` never share or delete each other's files. Each file's timestamps start at 0. FLV needs
//! no trailer: a file cut by a power loss or SIGKILL ends in at most one partial tag, which
//! demuxers drop. ADTS and MP3 are sequences of self-synchronising frames: a cut file loses its
//! last partial frame, nothing more. The `duration` and `filesize` of the stored metadata are
//! zeroed (a publisher's values describe its own file, not ours): players then take the
//! duration from the last tag.
//!
//! ## Write policy: power cut against card wear
//! Each file has a [`BLOCK_BYTES`] buffer. It is written (one `write` call, unless the kernel
//! takes less) and `fdatasync`ed when it is full, when it holds [`SYNC_MS`] of stream time, and
//! when the file is closed. A power cut therefore loses at most the last [`SYNC_MS`] (10 s) of
//! audio, plus what a slow card had not taken yet (see below). Writes per minute and file, each
//! followed by one `fdatasync`: `max(60 / 10, bytes per minute / 256 KiB)`. Measured over a
//! minute (`write_and_sync_calls_per_minute` in `tests/record.rs`): AAC or MP3 at 128 kbit/s 6
//! (12 with the `.aac`/`.mp3` beside the FLV), 44.1 kHz stereo ADPCM (353 kbit/s) 11, stereo PCM
//! (1411 kbit/s) 41; plus one directory `fsync` per new file, so the file's name survives a
//! power cut too. [`Stats`] counts them.
//!
//! ## One thread for the card
//! Everything that touches the disk — directory scans, file creation, writes, `fdatasync`s,
//! closing, deletion — runs on one [`Disk`] thread shared by every recording: an SD card can
//! take hundreds of milliseconds for an `fdatasync`, and a failing one can block for seconds,
//! which on the event loop's thread would stall every player and overrun the capture. One
//! thread, not one per recorder: the card does one thing at a time anyway, the number of
//! threads is bounded by construction (strangers who create streams cannot create threads),
//! and the one thread that creates and deletes files knows which are open, so retention never
//! deletes a file being written. The loop only appends to a buffer and hands full blocks over
//! (no copy: the buffer itself moves) with a `try_send` on a channel of [`QUEUE_OPS`]
//! operations: it never waits, not even for a recorder that ends (the thread closes its files
//! after its last block). Memory stays bounded: at most [`QUEUE_OPS`] blocks wait in all, and
//! at most [`MAX_BLOCKS_IN_FLIGHT`] of one recorder; past either, new blocks are dropped whole
//! (the files stay valid, with a gap; a file whose first block, with the FLV header, cannot go
//! is not started), counted in [`Stats::dropped`] and logged once per episode.
//!
//! ## Failures
//! An error creating, writing or syncing a file (a full disk, `EIO` from a failing card) loses
//! that block and closes the stream's files (a file that got nothing is removed): one error
//! line per episode, [`Stats::failures`] and [`Stats::lost`] count it, [`Recorder::error`] says
//! what it is. The recording is not over: after a backoff ([`FIRST_RETRY`], doubled per failed
//! attempt up to [`MAX_RETRY`]) the thread starts new files (the retention, which may free
//! space, runs after every block, lost ones too), so the recording resumes by itself (one line)
//! once the card takes data again. The stream itself never sees any of it.

use std::collections::BTreeMap;
use std::fmt;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc::{self, Receiver, SyncSender};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use zerocast_core::adts::{self, AdtsHeader};
use zerocast_core::flv::{self, AacPacketType, SoundFormat};

/// Size of each file's write buffer: one write (and one `fdatasync`) per this many bytes.
pub const BLOCK_BYTES: usize = 256 * 1024;
/// Buffered audio is written and synced once it spans this much stream time: the most a power
/// cut can lose.
pub const SYNC_MS: u32 = 10_000;
/// Blocks of one recorder handed to the disk thread and not yet on the card before its new
/// ones are dropped: one stream cannot take the whole queue.
pub const MAX_BLOCKS_IN_FLIGHT: usize = 2;
/// Operations waiting for the disk thread, all recorders together: what a stalled card can cost
/// in memory (at most this many blocks of [`BLOCK_BYTES`] and a little), whatever the number of
/// streams and however often they come and go.
pub const QUEUE_OPS: usize = 16;
/// The wait after an error before the recording tries new files.
pub const FIRST_RETRY: Duration = Duration::from_secs(1);
/// The longest wait between attempts while the error lasts.
pub const MAX_RETRY: Duration = Duration::from_secs(60);
/// Between a stream's name and the rest of its files' names: never in a stream name.
const SEPARATOR: char = '@';
const MIB: u64 = 1024 * 1024;
/// A buffer's capacity: a block and the largest message that may overshoot it.
const BUFFER_CAPACITY: usize = BLOCK_BYTES + 64 * 1024;
/// errno for a write that took nothing (std reports it without one).
const ENOSPC: i32 = 28;
/// The disk thread's stack: it moves buffers and paths around, nothing deep.
const STACK_BYTES: usize = 128 * 1024;

/// How streams are recorded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Settings {
    /// Start a new file after this many seconds of stream time; 0: never by time.
    pub interval_s: u32,
    /// Start a new file before one would grow past this many MiB; 0: no limit.
    pub max_mb: u32,
    /// Delete the oldest recordings in the directory — of every stream recorded there — while
    /// all of them together hold more than this many MiB; 0: keep everything.
    ///
    /// Per directory, not per stream: stream names come from publishers and, with `--record`,
    /// from anyone who plays a made-up name, so a cap per name bounds nothing, while what an
    /// admin sizes is the disk. The oldest file goes first whichever stream it belongs to
    /// (within a stream by sequence number, across streams by modification time), as in a
    /// video recorder's ring. Files being written are never deleted; other files in the
    /// directory (not named `<stream>@<n>-….{flv,aac,mp3}`) are neither counted nor touched.
    pub keep_mb: u32,
    /// Also write the audio as `.aac` (ADTS) or `.mp3` beside the FLV when the codec is AAC
    /// (LC, main, SSR or LTP with a channel configuration) or MP3.
    pub raw: bool,
}

/// Counters of one recorder, for the status line, metrics and tests.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    /// Files created (FLV and raw).
    pub files: u64,
    /// Bytes written to files.
    pub bytes: u64,
    /// `write` system calls.
    pub writes: u64,
    /// `fdatasync` calls on files and `fsync` calls on the directory.
    pub syncs: u64,
    /// Old files deleted to stay under `keep_mb` (any stream's, when this recorder's growth
    /// went past it).
    pub deleted: u64,
    /// Bytes dropped because the card was behind (the queue or this recorder's share full).
    pub dropped: u64,
    /// Errors met creating, writing or syncing a file.
    pub failures: u64,
    /// Bytes lost to those errors and to the waits before a new file.
    pub lost: u64,
}

/// Why a recording could not start or lost audio.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RecordError {
    /// The directory could not be created or read.
    Dir {
        /// The directory.
        path: PathBuf,
        /// The errno.
        errno: i32,
    },
    /// A new file could not be created.
    Create {
        /// The file.
        path: PathBuf,
        /// The errno.
        errno: i32,
    },
    /// Writing to a file failed (`ENOSPC`: the disk is full; `EIO`: the card).
    Write {
        /// The file.
        path: PathBuf,
        /// The errno.
        errno: i32,
    },
    /// `fdatasync` (or the directory's `fsync`) failed: the data may not be on the card.
    Sync {
        /// The file or directory.
        path: PathBuf,
        /// The errno.
        errno: i32,
    },
    /// The disk thread could not be started.
    Thread {
        /// The errno.
        errno: i32,
    },
    /// The disk thread has [`QUEUE_OPS`] operations waiting (the card is stalled) or is gone:
    /// no new recording now.
    Busy,
    /// A stream name that cannot name files (empty, or with `/` or `@`).
    Name,
}

impl fmt::Display for RecordError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (what, path, errno) = match self {
            Self::Dir { path, errno } => ("directory", path, errno),
            Self::Create { path, errno } => ("create", path, errno),
            Self::Write { path, errno } => ("write", path, errno),
            Self::Sync { path, errno } => ("sync", path, errno),
            Self::Thread { errno } => {
                let e = io::Error::from_raw_os_error(*errno);
                return write!(f, "disk thread: {e}");
            }
            Self::Busy => return f.write_str("the disk is behind"),
            Self::Name => return f.write_str("a stream name that cannot name a file"),
        };
        write!(
            f,
            "{what} {}: {}",
            path.display(),
            io::Error::from_raw_os_error(*errno)
        )
    }
}

impl std::error::Error for RecordError {}

fn errno(e: &io::Error) -> i32 {
    // Errors without an errno come from std itself (a zero-length write): call them EIO.
    e.raw_os_error().unwrap_or(5)
}

/// The raw companion file's framing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Raw {
    /// AAC frames behind 7-byte ADTS headers (the core's framing).
    Adts(AdtsHeader),
    /// MP3 frames as they are.
    Mp3,
}

impl Raw {
    fn extension(self) -> &'static str {
        match self {
            Raw::Adts(_) => "aac",
            Raw::Mp3 => "mp3",
        }
    }

    /// The ADTS framing an AAC sequence header (tag body: header byte, packet type 0,
    /// AudioSpecificConfig) describes, if ADTS can carry it (ISO 14496-3 1.6.2.1: object types
    /// 1–4, a sampling frequency index, a channel configuration 1–7).
    fn adts(sequence_header: &[u8]) -> Option<Raw> {
        let config = sequence_header.get(2..)?;
        AdtsHeader::from_audio_specific_config(config)
            .ok()
            .map(Raw::Adts)
    }

    /// Appends one frame (the codec data of an audio tag body) in this framing.
    fn frame(self, data: &[u8], out: &mut Vec<u8>) {
        if let Raw::Adts(header) = self {
            let mut head = [0u8; adts::HEADER_LEN];
            // A frame ADTS cannot describe (over 8 KiB: not an AAC frame) is left out.
            if header.emit(data.len(), &mut head).is_err() {
                return;
            }
            out.extend_from_slice(&head);
        }
        out.extend_from_slice(data);
    }
}

/// Which of a segment's two files a block is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Slot {
    Flv = 0,
    Raw = 1,
}

/// One file being filled and its buffer.
struct Output {
    slot: Slot,
    extension: &'static str,
    buf: Vec<u8>,
    /// Bytes handed to the disk thread plus the buffer.
    size: u64,
    /// Whether its first block has been handed over: that one starts the file (and holds the
    /// FLV's file header), so it goes even past this recorder's share of the queue.
    started: bool,
}

impl Output {
    fn new(slot: Slot, extension: &'static str) -> Output {
        Output {
            slot,
            extension,
            buf: Vec::with_capacity(BUFFER_CAPACITY),
            size: 0,
            started: false,
        }
    }
}

/// The files being filled now: the disk thread starts them at their first block.
struct Segment {
    /// Names the segment to the disk thread: a new id is a new pair of files.
    id: u64,
    flv: Output,
    raw: Option<(Raw, Output)>,
    /// The SoundFormat nibble of the audio in it: another codec starts a new file.
    format: u8,
    /// Stream timestamp of its first audio (its time 0).
    epoch: u32,
    /// Its latest tag timestamp, so that its timestamps never go back.
    last: u32,
    /// Stream timestamp of the oldest audio not yet handed over.
    buffered_since: Option<u32>,
}

impl Segment {
    fn buffered(&self) -> u64 {
        (self.flv.buf.len() + self.raw.as_ref().map_or(0, |(_, out)| out.buf.len())) as u64
    }
}

/// What a recorder and the disk thread share: counters, and the few facts one tells the other.
#[derive(Default)]
struct Shared {
    files: AtomicU64,
    bytes: AtomicU64,
    writes: AtomicU64,
    syncs: AtomicU64,
    deleted: AtomicU64,
    dropped: AtomicU64,
    failures: AtomicU64,
    lost: AtomicU64,
    /// Write operations sent and not yet done.
    in_flight: AtomicUsize,
    /// A segment whose files the disk thread lost to an error and will not take more of: the
    /// recorder starts a new one (with its own file header).
    restart: AtomicU64,
    /// The recorder is gone: the thread closes its files once `in_flight` is 0.
    ended: AtomicBool,
    /// The error the recording is recovering from, if any.
    error: Mutex<Option<RecordError>>,
}

impl Shared {
    fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }
}

/// Records one stream. See the module documentation for the files and the write policy.
pub struct Recorder {
    stream: String,
    settings: Settings,
    metadata: Vec<u8>,
    sequence_header: Vec<u8>,
    segment: Option<Segment>,
    /// The id of the next segment (ids start at 1: 0 is no segment in [`Shared::restart`]).
    next_segment: u64,
    id: u64,
    ops: SyncSender<Op>,
    shared: Arc<Shared>,
    /// An [`Op::Wake`] is in the queue (shared by every recorder of the [`Disk`]).
    wake_queued: Arc<AtomicBool>,
    /// Bytes dropped in the current episode of a card that does not keep up.
    dropping: Option<u64>,
}

impl Recorder {
    /// The stream's metadata message body (`onMetaData` + ECMA array, with or without a leading
    /// `@setDataFrame`): kept for the head of every file from the next one on. It is not written
    /// into the current file: ffmpeg's flvdec takes an `onMetaData` tag at a time other than 0
    /// for a subtitle stream (`flv_read_packet`), and players would show one.
    pub fn metadata(&mut self, on_metadata_body: &[u8]) {
        self.metadata = without_set_data_frame(on_metadata_body).to_vec();
        zero_number(&mut self.metadata, b"duration");
        zero_number(&mut self.metadata, b"filesize");
    }

    /// The AAC sequence header (the whole audio tag body: `AF 00` + AudioSpecificConfig): kept
    /// for the head of every AAC file, and written to the current one if it is AAC (a new one
    /// starts a new file when its ADTS framing differs).
    pub fn sequence_header(&mut self, body: &[u8]) {
        if self.sequence_header == body {
            return;
        }
        self.sequence_header = body.to_vec();
        self.poll_restart();
        let aac = SoundFormat::Aac as u8;
        if let Some(segment) = self.segment.as_ref().filter(|s| s.format == aac) {
            // The raw file's ADTS headers would be wrong from here on: start afresh.
            let framing = segment.raw.as_ref().map(|(raw, _)| *raw);
            if framing.is_some_and(|raw| Some(raw) != Raw::adts(body)) {
                self.close();
            } else {
                let at = segment.last;
                self.tag(flv::TAG_AUDIO, at, body);
            }
        }
    }

    /// One audio message: `flv_audio_body` is the FLV audio tag body (header byte, then the
    /// codec data), `timestamp_ms` the stream's time. An AAC sequence header is taken as
    /// [`Self::sequence_header`].
    pub fn audio(&mut self, timestamp_ms: u32, flv_audio_body: &[u8]) {
        let Some(&first) = flv_audio_body.first() else {
            return;
        };
        let format = first >> 4;
        let aac = format == SoundFormat::Aac as u8;
        if aac && flv_audio_body.get(1) == Some(&(AacPacketType::SequenceHeader as u8)) {
            self.sequence_header(flv_audio_body);
            return;
        }
        self.poll_restart();
        if let Some(segment) = &self.segment {
            let elapsed = timestamp_ms.wrapping_sub(segment.epoch);
            let interval = u64::from(self.settings.interval_s) * 1000;
            let by_time = interval > 0 && u64::from(elapsed) >= interval && elapsed < 1 << 31;
            let limit = u64::from(self.settings.max_mb) * MIB;
            let tag_len = (flv::TAG_HEADER_LEN + flv_audio_body.len() + 4) as u64;
            let by_size = limit > 0 && segment.flv.size + tag_len > limit;
            if by_time || by_size || segment.format != format {
                self.close();
            }
        }
        if self.segment.is_none() {
            self.open(timestamp_ms, format);
        }
        let Some(segment) = &mut self.segment else {
            return;
        };
        // Time since the file's start; a stream clock that went back keeps the file's last time.
        let elapsed = timestamp_ms.wrapping_sub(segment.epoch);
        let at = if elapsed >= 1 << 31 {
            segment.last
        } else {
            elapsed.max(segment.last)
        };
        segment.buffered_since.get_or_insert(timestamp_ms);
        if let Some((raw, out)) = &mut segment.raw {
            let data = flv_audio_body
                .get(if aac { 2 } else { 1 }..)
                .unwrap_or_default();
            let before = out.buf.len();
            raw.frame(data, &mut out.buf);
            out.size += (out.buf.len() - before) as u64;
        }
        self.tag(flv::TAG_AUDIO, at, flv_audio_body);
        let Some(segment) = &self.segment else {
            return;
        };
        let due = segment
            .buffered_since
            .is_some_and(|since| timestamp_ms.wrapping_sub(since) >= SYNC_MS);
        let full = segment
            .flv
            .buf
            .len()
            .max(segment.raw.as_ref().map_or(0, |(_, out)| out.buf.len()))
            >= BLOCK_BYTES;
        if due || full {
            self.flush();
        }
    }

    /// Hands what is buffered to the disk thread, to be written and synced (also done on drop).
    /// Call it when the stream stops sending audio for a while (its publisher left and no
    /// silence is made). Never waits: what the queue cannot take is dropped and counted.
    pub fn flush(&mut self) {
        let Some(segment) = &mut self.segment else {
            return;
        };
        segment.buffered_since = None;
        let id = segment.id;
        let (flv, raw) = (&mut segment.flv, segment.raw.as_mut().map(|(_, out)| out));
        let mut unstarted = false;
        for out in std::iter::once(flv).chain(raw) {
            if out.buf.is_empty() {
                continue;
            }
            let data = std::mem::replace(&mut out.buf, Vec::with_capacity(BUFFER_CAPACITY));
            let len = data.len() as u64;
            let in_flight = &self.shared.in_flight;
            // A file's first block goes past this recorder's share (the file needs it), not
            // past the queue; the raw file of an FLV that could not start waits for the next.
            let room = !unstarted
                && (!out.started || in_flight.load(Ordering::Acquire) < MAX_BLOCKS_IN_FLIGHT);
            let sent = room && {
                in_flight.fetch_add(1, Ordering::AcqRel);
                let op = Op::Write(Block {
                    recording: self.id,
                    segment: id,
                    slot: out.slot,
                    extension: out.extension,
                    first: !out.started,
                    data,
                });
                let sent = self.ops.try_send(op).is_ok();
                if !sent {
                    in_flight.fetch_sub(1, Ordering::AcqRel);
                }
                sent
            };
            if sent {
                out.started = true;
                if let Some(dropped) = self.dropping.take() {
                    log::warn!(
                        "recording {}: the card caught up after {} KiB were dropped",
                        self.stream,
                        dropped / 1024
                    );
                }
                continue;
            }
            out.size -= len;
            unstarted |= out.slot == Slot::Flv && !out.started;
            Shared::add(&self.shared.dropped, len);
            if self.dropping.is_none() {
                log::warn!(
                    "recording {}: the card is behind; dropping audio",
                    self.stream
                );
            }
            *self.dropping.get_or_insert(0) += len;
        }
        if unstarted {
            // A file that could not start: the next audio starts a new one, header first.
            self.segment = None;
        }
    }

    /// Blocks until the disk thread has done everything handed to it so far. For tests; the
    /// loop never waits.
    pub fn wait(&mut self) {
        let (done, finished) = mpsc::channel();
        if self.ops.send(Op::Idle(done)).is_ok() {
            // An Err means the thread is gone: nothing more to wait for.
            let _ = finished.recv();
        }
    }

    /// The counters.
    pub fn stats(&self) -> Stats {
        let load = |c: &AtomicU64| c.load(Ordering::Relaxed);
        let s = &self.shared;
        Stats {
            files: load(&s.files),
            bytes: load(&s.bytes),
            writes: load(&s.writes),
            syncs: load(&s.syncs),
            deleted: load(&s.deleted),
            dropped: load(&s.dropped),
            failures: load(&s.failures),
            lost: load(&s.lost),
        }
    }

    /// The error the recording is recovering from (files are retried after a backoff), if any.
    pub fn error(&self) -> Option<RecordError> {
        self.shared.error.lock().ok().and_then(|e| e.clone())
    }

    /// Appends one FLV tag to the current file's buffer.
    fn tag(&mut self, kind: u8, timestamp: u32, body: &[u8]) {
        let Some(segment) = &mut self.segment else {
            return;
        };
        let Ok(size) = u32::try_from(body.len()) else {
            return;
        };
        let mut header = [0u8; flv::TAG_HEADER_LEN];
        let mut trailer = [0u8; 4];
        // Both only fail for a body over 16 MiB, which no RTMP message can carry here.
        if flv::encode_tag_header(&mut header, kind, size, timestamp).is_err()
            || flv::encode_previous_tag_size(&mut trailer, size).is_err()
        {
            return;
        }
        let out = &mut segment.flv;
        out.buf.extend_from_slice(&header);
        out.buf.extend_from_slice(body);
        out.buf.extend_from_slice(&trailer);
        out.size += (header.len() + body.len() + trailer.len()) as u64;
        segment.last = timestamp;
    }

    /// Starts a new segment at stream time `epoch` with the file header, metadata and sequence
    /// header; the disk thread names and creates its files at their first block.
    fn open(&mut self, epoch: u32, format: u8) {
        let id = self.next_segment;
        self.next_segment += 1;
        let raw = match format {
            _ if !self.settings.raw => None,
            f if f == SoundFormat::Mp3 as u8 => Some(Raw::Mp3),
            f if f == SoundFormat::Aac as u8 => Raw::adts(&self.sequence_header),
            _ => None,
        };
        let mut header = [0u8; flv::FILE_HEADER_LEN];
        let _ = flv::encode_file_header(&mut header, true, false);
        let mut segment = Segment {
            id,
            flv: Output::new(Slot::Flv, "flv"),
            raw: raw.map(|r| (r, Output::new(Slot::Raw, r.extension()))),
            format,
            epoch,
            last: 0,
            buffered_since: None,
        };
        segment.flv.buf.extend_from_slice(&header);
        segment.flv.size = header.len() as u64;
        self.segment = Some(segment);
        let metadata = std::mem::take(&mut self.metadata);
        if !metadata.is_empty() {
            self.tag(flv::TAG_SCRIPT_DATA, 0, &metadata);
        }
        self.metadata = metadata;
        let sequence_header = std::mem::take(&mut self.sequence_header);
        if format == SoundFormat::Aac as u8 && !sequence_header.is_empty() {
            self.tag(flv::TAG_AUDIO, 0, &sequence_header);
        }
        self.sequence_header = sequence_header;
    }

    /// Hands the rest over; the next audio starts new files.
    fn close(&mut self) {
        self.flush();
        self.segment = None;
    }

    /// Drops the current segment if the disk thread lost its files (an error): its buffers
    /// could only continue a file that is gone. Counted as lost.
    fn poll_restart(&mut self) {
        let lost = self.shared.restart.load(Ordering::Acquire);
        if let Some(segment) = self.segment.as_ref().filter(|s| s.id == lost) {
            Shared::add(&self.shared.lost, segment.buffered());
            self.segment = None;
        }
    }
}

impl Drop for Recorder {
    /// Hands the buffers over and leaves: the disk thread closes the files after the last block.
    fn drop(&mut self) {
        self.flush();
        self.shared.ended.store(true, Ordering::SeqCst);
        // Wakes an idle thread; a full queue means it is busy and looks after its next op. One
        // wake-up waits at most: streams that come and go do not take the queue from audio.
        // SeqCst here and on the thread (clears the flag, then reads `ended`): either this sees
        // the flag cleared and sends, or the thread sees `ended`.
        if !self.wake_queued.swap(true, Ordering::SeqCst) && self.ops.try_send(Op::Wake).is_err() {
            self.wake_queued.store(false, Ordering::Release);
        }
    }
}

/// What the disk thread is asked to do, in order.
enum Op {
    /// A new recording.
    Start(Box<Start>),
    /// A block for one of a recording's files.
    Write(Block),
    /// Look for recordings that ended (sent by a recorder's drop, at most one in the queue; may
    /// be lost to a full queue, which means the thread is busy and looks anyway).
    Wake,
    /// Report that everything before has been done.
    Idle(mpsc::Sender<()>),
    /// Close everything and end (the process is stopping).
    Exit,
}

/// A new recording for the disk thread.
struct Start {
    id: u64,
    dir: PathBuf,
    stream: String,
    settings: Settings,
    shared: Arc<Shared>,
}

/// A block for a recording's file.
struct Block {
    recording: u64,
    /// The recorder's segment: a new one closes the files and starts new ones.
    segment: u64,
    slot: Slot,
    extension: &'static str,
    /// The file's first block: the file is created for it.
    first: bool,
    data: Vec<u8>,
}

/// The disk thread of every recording: starts [`Recorder`]s, and owns all their files.
pub struct Disk {
    ops: SyncSender<Op>,
    wake_queued: Arc<AtomicBool>,
    thread: Option<thread::JoinHandle<()>>,
    next_id: u64,
}

impl Disk {
    /// Starts the thread.
    pub fn start() -> Result<Disk, RecordError> {
        let (ops, received) = mpsc::sync_channel(QUEUE_OPS);
        let wake_queued = Arc::new(AtomicBool::new(false));
        let woken = Arc::clone(&wake_queued);
        let thread = thread::Builder::new()
            .name("record".to_owned())
            .stack_size(STACK_BYTES)
            .spawn(move || {
                // Signals are the event loop's (a signalfd): a thread that could take SIGTERM
                // would let its default action kill the process without a clean stop.
                let _ = nix::sys::signal::SigSet::all().thread_block();
                DiskThread::default().run(&received, &woken);
            })
            .map_err(|e| RecordError::Thread { errno: errno(&e) })?;
        Ok(Disk {
            ops,
            wake_queued,
            thread: Some(thread),
            next_id: 0,
        })
    }

    /// A recorder of `stream_name` into `dir` (created if missing, by the disk thread). Files of
    /// the stream already there are numbered on from; no file is created before the first
    /// audio. Never waits: [`RecordError::Busy`] when the thread's queue is full.
    pub fn recorder(
        &mut self,
        dir: &Path,
        stream_name: &str,
        settings: Settings,
    ) -> Result<Recorder, RecordError> {
        if stream_name.is_empty() || stream_name.contains(['/', SEPARATOR]) {
            return Err(RecordError::Name);
        }
        self.next_id += 1;
        let shared = Arc::new(Shared::default());
        let start = Start {
            id: self.next_id,
            dir: dir.to_owned(),
            stream: stream_name.to_owned(),
            settings,
            shared: Arc::clone(&shared),
        };
        self.ops
            .try_send(Op::Start(Box::new(start)))
            .map_err(|_| RecordError::Busy)?;
        Ok(Recorder {
            stream: stream_name.to_owned(),
            settings,
            metadata: Vec::new(),
            sequence_header: Vec::new(),
            segment: None,
            next_segment: 1,
            id: self.next_id,
            ops: self.ops.clone(),
            shared,
            wake_queued: Arc::clone(&self.wake_queued),
            dropping: None,
        })
    }
}

impl Drop for Disk {
    /// Waits for the thread to write what it was handed and close the files: on a clean
    /// shutdown the last audio is on the card (a card that hangs holds the process up until
    /// systemd kills it). Only at the end: the loop drops its `Disk` last.
    fn drop(&mut self) {
        let _ = self.ops.send(Op::Exit);
        if let Some(thread) = self.thread.take() {
            // A thread that panicked has nothing more to say.
            let _ = thread.join();
        }
    }
}

/// An open file of a recording.
struct OpenFile {
    file: File,
    path: PathBuf,
    /// Bytes written to it.
    written: u64,
}

/// Waiting out an error.
struct Failing {
    retry_at: Instant,
    backoff: Duration,
    /// Bytes lost in this episode.
    lost: u64,
}

/// One recording, on the disk thread.
struct Recording {
    id: u64,
    dir: PathBuf,
    stream: String,
    keep: u64,
    shared: Arc<Shared>,
    /// The recorder's segment the files are for.
    segment: u64,
    /// The segment's file name without the extension, and its sequence number, once named.
    base: Option<(String, u64)>,
    files: [Option<OpenFile>; 2],
    failing: Option<Failing>,
    /// At least the next sequence number (the directory may hold higher ones).
    next_seq: u64,
}

impl Recording {
    fn new(start: Start) -> Recording {
        Recording {
            id: start.id,
            dir: start.dir,
            stream: start.stream,
            keep: u64::from(start.settings.keep_mb) * MIB,
            shared: start.shared,
            segment: 0,
            base: None,
            files: [None, None],
            failing: None,
            next_seq: 1,
        }
    }

    /// Writes a block: new files for a new segment, nothing while waiting out an error.
    fn write(&mut self, dir: &mut DirState, block: &Block) {
        if block.segment != self.segment {
            self.close(false);
            self.segment = block.segment;
        }
        let len = block.data.len() as u64;
        let slot = block.slot as usize;
        if self.files[slot].is_none() {
            let ready = !self
                .failing
                .as_ref()
                .is_some_and(|f| Instant::now() < f.retry_at);
            if !ready || !block.first {
                self.lose(len);
                if ready {
                    // The file was lost mid-segment: ask for a new segment, header first.
                    self.shared.restart.store(self.segment, Ordering::Release);
                }
                return;
            }
            if let Err(e) = self.create(dir, block.slot, block.extension) {
                self.fail(e, len);
                return;
            }
        }
        let Some(open) = &mut self.files[slot] else {
            return;
        };
        let (written, result) = write_and_sync(&self.shared, open, &block.data);
        dir.grow(&open.path, written);
        match result {
            Ok(()) => {
                if let Some(failing) = self.failing.take() {
                    if let Ok(mut error) = self.shared.error.lock() {
                        *error = None;
                    }
                    log::warn!(
                        "recording {}: resumed in {} after {} KiB lost",
                        self.stream,
                        open.path.display(),
                        failing.lost / 1024
                    );
                }
            }
            Err(e) => self.fail(e, len - written),
        }
    }

    /// Creates `slot`'s file of the current segment (the first of the two reads the directory
    /// and names both), and syncs the directory so the name survives a power cut.
    fn create(
        &mut self,
        dir: &mut DirState,
        slot: Slot,
        extension: &str,
    ) -> Result<(), RecordError> {
        if self.base.is_none() {
            dir.scan()?;
            let seq = dir.next_seq(&self.stream).max(self.next_seq);
            self.next_seq = seq + 1;
            let stamp = utc_stamp(SystemTime::now());
            let base = format!("{}{SEPARATOR}{seq:06}-{stamp}", self.stream);
            self.base = Some((base, seq));
        }
        let Some((base, seq)) = &self.base else {
            return Ok(());
        };
        let path = self.dir.join(format!("{base}.{extension}"));
        let file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o640)
            .open(&path)
            .map_err(|e| RecordError::Create {
                path: path.clone(),
                errno: errno(&e),
            })?;
        Shared::add(&self.shared.files, 1);
        dir.add(&self.stream, *seq, &path);
        if slot == Slot::Flv {
            log::info!("recording {} to {}", self.stream, path.display());
        }
        self.files[slot as usize] = Some(OpenFile {
            file,
            path,
            written: 0,
        });
        Shared::add(&self.shared.syncs, 1);
        File::open(&self.dir)
            .and_then(|d| d.sync_all())
            .map_err(|e| RecordError::Sync {
                path: self.dir.clone(),
                errno: errno(&e),
            })
    }

    /// Takes note of an error: counted, logged once per episode, the files closed, the next
    /// attempt after a backoff.
    fn fail(&mut self, error: RecordError, lost: u64) {
        Shared::add(&self.shared.failures, 1);
        let now = Instant::now();
        match &mut self.failing {
            Some(failing) => {
                failing.backoff = (failing.backoff * 2).min(MAX_RETRY);
                failing.retry_at = now + failing.backoff;
            }
            None => {
                log::error!(
                    "recording {} lost audio: {error}; new files are tried from {} s on",
                    self.stream,
                    FIRST_RETRY.as_secs()
                );
                self.failing = Some(Failing {
                    retry_at: now + FIRST_RETRY,
                    backoff: FIRST_RETRY,
                    lost: 0,
                });
            }
        }
        self.lose(lost);
        if let Ok(mut e) = self.shared.error.lock() {
            *e = Some(error);
        }
        self.close(true);
    }

    /// Counts bytes that did not reach the card.
    fn lose(&mut self, bytes: u64) {
        Shared::add(&self.shared.lost, bytes);
        if let Some(failing) = &mut self.failing {
            failing.lost += bytes;
        }
    }

    /// Closes the files (the data is synced block by block); the next block names new ones.
    /// After an error, a file that got nothing is removed rather than left empty.
    fn close(&mut self, failed: bool) {
        for open in self.files.iter_mut().filter_map(Option::take) {
            if failed && open.written == 0 {
                let _ = fs::remove_file(&open.path);
            }
        }
        self.base = None;
    }

    fn open_paths(&self) -> impl Iterator<Item = &Path> {
        self.files.iter().flatten().map(|f| f.path.as_path())
    }
}

/// Writes a block (counting each `write` call) and syncs its data; the bytes written, also
/// when it fails.
fn write_and_sync(
    shared: &Shared,
    open: &mut OpenFile,
    data: &[u8],
) -> (u64, Result<(), RecordError>) {
    let error = |errno| RecordError::Write {
        path: open.path.clone(),
        errno,
    };
    let mut at = 0;
    let result = loop {
        if at == data.len() {
            break Ok(());
        }
        Shared::add(&shared.writes, 1);
        match open.file.write(&data[at..]) {
            // A regular file that takes nothing is full.
            Ok(0) => break Err(error(ENOSPC)),
            Ok(n) => at += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => break Err(error(errno(&e))),
        }
    };
    let written = at as u64;
    open.written += written;
    Shared::add(&shared.bytes, written);
    let result = result.and_then(|()| {
        Shared::add(&shared.syncs, 1);
        open.file.sync_data().map_err(|e| RecordError::Sync {
            path: open.path.clone(),
            errno: errno(&e),
        })
    });
    (written, result)
}

/// A recording's file in a directory, for the retention.
struct Entry {
    stream: String,
    seq: u64,
    path: PathBuf,
    size: u64,
    modified: SystemTime,
}

/// The recordings in one directory, as last scanned and grown since.
struct DirState {
    path: PathBuf,
    entries: Vec<Entry>,
}

impl DirState {
    /// Reads the directory (created if missing): every stream's recordings, nothing else.
    fn scan(&mut self) -> Result<(), RecordError> {
        let dir_error = |e: io::Error| RecordError::Dir {
            path: self.path.clone(),
            errno: errno(&e),
        };
        fs::create_dir_all(&self.path).map_err(dir_error)?;
        self.entries.clear();
        for entry in fs::read_dir(&self.path).map_err(dir_error)? {
            let entry = entry.map_err(dir_error)?;
            let name = entry.file_name();
            let Some((stream, seq)) = name.to_str().and_then(parse_file_name) else {
                continue;
            };
            let Ok(meta) = entry.metadata() else {
                continue;
            };
            self.entries.push(Entry {
                stream: stream.to_owned(),
                seq,
                path: entry.path(),
                size: meta.len(),
                modified: meta.modified().unwrap_or(UNIX_EPOCH),
            });
        }
        Ok(())
    }

    /// One more than the highest sequence number of `stream`'s files.
    fn next_seq(&self, stream: &str) -> u64 {
        self.entries
            .iter()
            .filter(|e| e.stream == stream)
            .map(|e| e.seq + 1)
            .max()
            .unwrap_or(1)
    }

    fn add(&mut self, stream: &str, seq: u64, path: &Path) {
        self.entries.push(Entry {
            stream: stream.to_owned(),
            seq,
            path: path.to_owned(),
            size: 0,
            modified: SystemTime::now(),
        });
    }

    fn grow(&mut self, path: &Path, bytes: u64) {
        if let Some(entry) = self.entries.iter_mut().find(|e| e.path == path) {
            entry.size += bytes;
        }
    }

    /// Deletes the oldest files that are not `open` while all together hold more than `keep`
    /// bytes (0: no limit); the number deleted.
    fn trim(&mut self, keep: u64, open: &[&Path], stream: &str) -> u64 {
        let mut total: u64 = self.entries.iter().map(|e| e.size).sum();
        let mut deleted = 0;
        while keep > 0 && total > keep {
            // Each stream's oldest closed file by sequence number; of those, the least recently
            // written.
            let mut oldest: BTreeMap<&str, usize> = BTreeMap::new();
            for (i, e) in self.entries.iter().enumerate() {
                if open.contains(&e.path.as_path()) {
                    continue;
                }
                let slot = oldest.entry(e.stream.as_str()).or_insert(i);
                if self.entries[*slot].seq > e.seq {
                    *slot = i;
                }
            }
            let Some(&victim) = oldest
                .values()
                .min_by_key(|&&i| (self.entries[i].modified, self.entries[i].seq))
            else {
                break;
            };
            let entry = self.entries.swap_remove(victim);
            total -= entry.size;
            match fs::remove_file(&entry.path) {
                Ok(()) => deleted += 1,
                // Removed by someone else: nothing to do.
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                // Forgotten rather than retried at every block; the next scan finds it again.
                Err(e) => log::warn!(
                    "recording {stream}: cannot delete {}: {e}",
                    entry.path.display()
                ),
            }
        }
        deleted
    }
}

/// The disk thread's state: the recordings and their directories.
#[derive(Default)]
struct DiskThread {
    recordings: Vec<Recording>,
    dirs: Vec<DirState>,
}

impl DiskThread {
    /// Does the operations until told to exit or every sender is gone; then closes every file.
    fn run(mut self, ops: &Receiver<Op>, wake_queued: &AtomicBool) {
        for op in ops {
            match op {
                Op::Start(start) => self.recordings.push(Recording::new(*start)),
                Op::Write(block) => self.write(&block),
                Op::Wake => wake_queued.store(false, Ordering::SeqCst),
                Op::Idle(done) => {
                    let _ = done.send(());
                }
                Op::Exit => break,
            }
            // Recordings whose recorder is gone and whose blocks are all done: files closed.
            self.recordings.retain(|r| {
                !(r.shared.ended.load(Ordering::SeqCst)
                    && r.shared.in_flight.load(Ordering::Acquire) == 0)
            });
        }
    }

    fn write(&mut self, block: &Block) {
        let Some(at) = self.recordings.iter().position(|r| r.id == block.recording) else {
            return;
        };
        let path = self.recordings[at].dir.clone();
        let dir = match self.dirs.iter().position(|d| d.path == path) {
            Some(i) => i,
            None => {
                self.dirs.push(DirState {
                    path,
                    entries: Vec::new(),
                });
                self.dirs.len() - 1
            }
        };
        let recording = &mut self.recordings[at];
        recording.write(&mut self.dirs[dir], block);
        let recording = &self.recordings[at];
        let open: Vec<&Path> = self
            .recordings
            .iter()
            .flat_map(Recording::open_paths)
            .collect();
        let deleted = self.dirs[dir].trim(recording.keep, &open, &recording.stream);
        Shared::add(&recording.shared.deleted, deleted);
        recording.shared.in_flight.fetch_sub(1, Ordering::AcqRel);
    }
}

/// The stream and sequence number of a recording's file: `<stream>@<digits>-….{flv,aac,mp3}`.
fn parse_file_name(name: &str) -> Option<(&str, u64)> {
    let (stream, rest) = name.split_once(SEPARATOR)?;
    let (digits, rest) = rest.split_once('-')?;
    let known = [".flv", ".aac", ".mp3"].iter().any(|e| rest.ends_with(e));
    let valid = !stream.is_empty() && known && !digits.is_empty();
    let seq = digits
        .bytes()
        .all(|b| b.is_ascii_digit())
        .then(|| digits.parse().ok())
        .flatten()?;
    valid.then_some((stream, seq))
}

/// `YYYYMMDDTHHMMSSZ` for a time (UTC), from the days-since-epoch to civil date conversion.
fn utc_stamp(at: SystemTime) -> String {
    let secs = at.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let (days, rem) = (secs / 86_400, secs % 86_400);
    // Civil date from days since 1970-01-01 (proleptic Gregorian; eras of 400 years).
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z % 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + u64::from(month <= 2);
    format!(
        "{year:04}{month:02}{day:02}T{:02}{:02}{:02}Z",
        rem / 3600,
        rem / 60 % 60,
        rem % 60
    )
}

/// The body without a leading AMF0 string `@setDataFrame` (how publishers send metadata).
fn without_set_data_frame(body: &[u8]) -> &[u8] {
    const SET_DATA_FRAME: &[u8] = b"\x02\x00\x0d@setDataFrame";
    body.strip_prefix(SET_DATA_FRAME).unwrap_or(body)
}

/// Sets the AMF0 number property `key` of an object or ECMA array to 0, if present.
fn zero_number(amf: &mut [u8], key: &[u8]) {
    let mut pattern = Vec::with_capacity(key.len() + 3);
    pattern.extend_from_slice(&(key.len() as u16).to_be_bytes());
    pattern.extend_from_slice(key);
    pattern.push(0); // number marker
    if let Some(at) = amf.windows(pattern.len()).position(|w| w == pattern) {
        if let Some(value) = amf.get_mut(at + pattern.len()..at + pattern.len() + 8) {
            value.fill(0);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    /// A fresh directory under the temporary one.
    fn temp_dir(label: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("zerocast-{label}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        dir
    }

    /// `bytes` of PCM (16-bit stereo, 44.1 kHz) in messages of 4 KiB, the writer waited for
    /// every 64 messages as a stream in real time would give it time.
    fn feed_pcm(recorder: &mut Recorder, bytes: usize) {
        let mut body = vec![0x3F];
        body.resize(1 + 4096, 0x55);
        for i in 0..bytes / 4096 {
            // 4096 bytes of 44.1 kHz stereo s16 are 23 ms.
            recorder.audio(i as u32 * 23, &body);
            if i % 64 == 63 {
                recorder.wait();
            }
        }
        recorder.flush();
        recorder.wait();
    }

    /// The recordings in `dir` by stream name: (name, size) of each file.
    fn listing(dir: &Path) -> Vec<(String, u64)> {
        let mut files: Vec<(String, u64)> = fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap())
            .map(|e| {
                let name = e.file_name().to_string_lossy().into_owned();
                (name, e.metadata().unwrap().len())
            })
            .collect();
        files.sort();
        files
    }

    #[test]
    fn odd_bodies_neither_panic_nor_stop_the_recording() {
        let dir = temp_dir("record-odd");
        let settings = Settings {
            interval_s: 1,
            max_mb: 1,
            keep_mb: 1,
            raw: true,
        };
        let mut disk = Disk::start().unwrap();
        let mut recorder = disk.recorder(&dir, "odd", settings).unwrap();
        recorder.metadata(&[]);
        recorder.sequence_header(&[0xAF]);
        let bodies: [&[u8]; 8] = [
            &[],
            &[0xAF],
            &[0xAF, 1],
            &[0xAF, 0],
            &[0x2F],
            &[0x3F, 1, 2],
            &[0xFF; 3],
            &[0xAF, 0, 0x12, 0x10],
        ];
        for (i, body) in bodies.iter().cycle().take(400).enumerate() {
            // Timestamps that jump back and forth.
            let at = (i as u32).wrapping_mul(if i % 3 == 0 { 977 } else { u32::MAX - 400 });
            recorder.audio(at, body);
        }
        recorder.flush();
        recorder.wait();
        assert_eq!(recorder.error(), None);
        assert!(recorder.stats().files > 1);
        drop(recorder);
        drop(disk);
        fs::remove_dir_all(&dir).unwrap();
    }

    /// `a-b` and `a_b` once shared a file prefix (`a_b-000001-….flv`): the second recording
    /// could not create its file, and each one's retention deleted the other's files.
    #[test]
    fn names_that_differ_only_in_punctuation_keep_their_own_files() {
        let dir = temp_dir("record-names");
        let settings = Settings {
            interval_s: 0,
            max_mb: 1,
            keep_mb: 0,
            raw: false,
        };
        let mut disk = Disk::start().unwrap();
        let mut dash = disk.recorder(&dir, "a-b", settings).unwrap();
        let mut underscore = disk.recorder(&dir, "a_b", settings).unwrap();
        // 2.5 MiB each, interleaved: files 1, 2 and 3 of both at the same time.
        for _ in 0..5 {
            feed_pcm(&mut dash, 512 * 1024);
            feed_pcm(&mut underscore, 512 * 1024);
        }
        let (d, u) = (dash.stats(), underscore.stats());
        drop((dash, underscore));
        drop(disk);
        let files = listing(&dir);
        println!("{files:?}\na-b {d:?}\na_b {u:?}");
        let of = |name: &str| -> Vec<u64> {
            files
                .iter()
                .filter(|(f, _)| parse_file_name(f).is_some_and(|(s, _)| s == name))
                .map(|(_, size)| *size)
                .collect()
        };
        for (name, stats) in [("a-b", d), ("a_b", u)] {
            let sizes = of(name);
            assert_eq!(sizes.len(), 3, "{name}: {files:?}");
            assert_eq!(sizes.iter().sum::<u64>(), stats.bytes, "{name}: {files:?}");
            assert_eq!((stats.failures, stats.dropped, stats.deleted), (0, 0, 0));
        }
        fs::remove_dir_all(&dir).unwrap();
    }

    /// `keep_mb` holds for the directory, whatever the number of streams recorded into it.
    #[test]
    fn keep_mb_caps_every_stream_in_the_directory_together() {
        let dir = temp_dir("record-cap");
        fs::create_dir_all(&dir).unwrap();
        fs::write(dir.join("notes.txt"), [0u8; 4096]).unwrap();
        let settings = Settings {
            interval_s: 0,
            max_mb: 1,
            keep_mb: 2,
            raw: false,
        };
        let mut disk = Disk::start().unwrap();
        let mut recorders: Vec<Recorder> = ["x", "y", "z"]
            .iter()
            .map(|name| disk.recorder(&dir, name, settings).unwrap())
            .collect();
        for _ in 0..6 {
            for recorder in &mut recorders {
                feed_pcm(recorder, 512 * 1024);
            }
        }
        let stats: Vec<Stats> = recorders.iter().map(Recorder::stats).collect();
        drop(recorders);
        drop(disk);
        let files = listing(&dir);
        let total: u64 = files
            .iter()
            .filter(|(f, _)| parse_file_name(f).is_some())
            .map(|(_, size)| size)
            .sum();
        println!("{files:?}: {total} B\n{stats:?}");
        // 9 MiB recorded; 2 MiB kept, the three files being written among them.
        assert!(total <= 2 * MIB, "{total} B: {files:?}");
        assert!(files.iter().any(|(f, _)| f == "notes.txt"));
        for name in ["x@", "y@", "z@"] {
            assert!(files.iter().any(|(f, _)| f.starts_with(name)), "{files:?}");
        }
        assert!(stats.iter().all(|s| s.failures == 0 && s.dropped == 0));
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn utc_stamps() {
        assert_eq!(utc_stamp(UNIX_EPOCH), "19700101T000000Z");
        let t = UNIX_EPOCH + Duration::from_secs(1_796_538_600); // 2026-12-06 06:30:00 UTC
        assert_eq!(utc_stamp(t), "20261206T063000Z");
        let leap = UNIX_EPOCH + Duration::from_secs(951_825_599); // 2000-02-29 11:59:59
        assert_eq!(utc_stamp(leap), "20000229T115959Z");
    }

    #[test]
    fn file_names_name_one_stream_exactly() {
        assert_eq!(
            parse_file_name("audio@000042-20261206T063000Z.flv"),
            Some(("audio", 42))
        );
        assert_eq!(
            parse_file_name("a-b@1234567-x.aac"),
            Some(("a-b", 1_234_567))
        );
        assert_eq!(parse_file_name("a_b@000001-x.mp3"), Some(("a_b", 1)));
        assert_eq!(parse_file_name("a.b@000001-x.flv"), Some(("a.b", 1)));
        // The old naming, other files, broken numbers.
        assert_eq!(parse_file_name("a_b-000001-x.flv"), None);
        assert_eq!(parse_file_name("a@000001-x.txt"), None);
        assert_eq!(parse_file_name("a@-x.flv"), None);
        assert_eq!(parse_file_name("@000001-x.flv"), None);
        assert_eq!(parse_file_name("a@00x001-x.flv"), None);
    }

    #[test]
    fn names_that_cannot_name_files_are_refused() {
        let mut disk = Disk::start().unwrap();
        let settings = Settings {
            interval_s: 0,
            max_mb: 0,
            keep_mb: 0,
            raw: false,
        };
        let dir = std::env::temp_dir();
        for name in ["", "a@b", "live/a"] {
            assert_eq!(
                disk.recorder(&dir, name, settings).err(),
                Some(RecordError::Name)
            );
        }
    }

    #[test]
    fn adts_from_an_audio_specific_config() {
        // LC (2), 44.1 kHz (index 4), stereo: 0x12 0x10.
        let lc = Raw::adts(&[0xAF, 0, 0x12, 0x10]).unwrap();
        assert_eq!(
            lc,
            Raw::Adts(AdtsHeader {
                object_type: 2,
                frequency_index: 4,
                channel_config: 2
            })
        );
        let mut out = Vec::new();
        lc.frame(&[0xAA; 10], &mut out);
        // Frame length 17 = 0b0_0000_0001_0001.
        assert_eq!(&out[..7], &[0xFF, 0xF1, 0x50, 0x80, 0x02, 0x3F, 0xFC]);
        assert_eq!(out.len(), 17);
        // HE-AAC signalled explicitly (object type 5) and a too short config: no ADTS.
        assert_eq!(Raw::adts(&[0xAF, 0, 0x2B, 0x92]), None);
        assert_eq!(Raw::adts(&[0xAF, 0, 0x12]), None);
    }

    #[test]
    fn metadata_is_unwrapped_and_its_duration_zeroed() {
        let mut body = b"\x02\x00\x0d@setDataFrame\x02\x00\x0aonMetaData".to_vec();
        body.extend_from_slice(b"\x08\x00\x00\x00\x01\x00\x08duration\x00");
        body.extend_from_slice(&12.5f64.to_be_bytes());
        body.extend_from_slice(b"\x00\x00\x09");
        let mut stored = without_set_data_frame(&body).to_vec();
        assert!(stored.starts_with(b"\x02\x00\x0aonMetaData"));
        zero_number(&mut stored, b"duration");
        zero_number(&mut stored, b"filesize");
        let at = stored.len() - 3 - 8;
        assert_eq!(&stored[at..at + 8], &0f64.to_be_bytes());
    }
}
