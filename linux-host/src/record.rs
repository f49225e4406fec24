//! Recording one stream to files: FLV for every codec (like nginx-rtmp's `record all`), plus
//! `.aac` (ADTS) or `.mp3` beside it when the codec allows, rotated by stream time and size,
//! the oldest deleted past a total, written so that an SD card lasts and a power cut costs little.
//!
//! The stream feeds a [`Recorder`] what it sends its players: every audio message body with its
//! timestamp ([`Recorder::audio`]), the metadata ([`Recorder::metadata`]) and the AAC sequence
//! header ([`Recorder::sequence_header`]). Both are kept and written at the head of every file
//! (at time 0). Between messages the loop calls nothing: buffers are handed over from `audio`.
//!
//! ## Files
//! `DIR/<stream>-<n>-<UTC start>.flv` (e.g. `live_audio-000042-20261206T063000Z.flv`), `n` one
//! more than the highest already in `DIR`, so names sort by age even when the Pi's clock (no RTC)
//! jumps at NTP sync. Each file's timestamps start at 0. FLV needs no trailer: a file cut by a
//! power loss or SIGKILL ends in at most one partial tag, which demuxers drop. ADTS and MP3 are
//! sequences of self-synchronising frames: a cut file loses its last partial frame, nothing
//! more. The `duration` and `filesize` of the stored metadata are zeroed (a publisher's values
//! describe its own file, not ours): players then take the duration from the last tag.
//!
//! ## Write policy: power cut against card wear
//! Each file has a [`BLOCK_BYTES`] buffer. It is written (one `write` call, unless the kernel
//! takes less) and `fdatasync`ed when it is full, when it holds [`SYNC_MS`] of stream time, and
//! when the file is closed. A power cut therefore loses at most the last [`SYNC_MS`] (10 s) of
//! audio, plus what a slow card had not taken yet (at most [`MAX_BLOCKS_IN_FLIGHT`] blocks, see
//! below). Writes per minute and file, each followed by one `fdatasync`: `max(60 / 10, bytes per
//! minute / 256 KiB)`. Measured over a minute (`write_and_sync_calls_per_minute` in
//! `tests/record.rs`): AAC or MP3 at 128 kbit/s 6 (12 with the `.aac`/`.mp3` beside the FLV),
//! 44.1 kHz stereo ADPCM (353 kbit/s) 11, stereo PCM (1411 kbit/s) 41; plus one directory
//! `fsync` per new file, so the file's name survives a power cut too. [`Stats`] counts them.
//!
//! ## A thread for the card
//! Writes, `fdatasync`s, file creation and deletion run on one writer thread per recorder: an SD
//! card can take hundreds of milliseconds for an `fdatasync`, and a failing one can block for
//! seconds, which on the event loop's thread would stall every player and overrun the capture.
//! The loop only appends to the buffer and hands full blocks over (no copy: the buffer itself
//! moves). At most [`MAX_BLOCKS_IN_FLIGHT`] blocks wait for the card; when it falls further
//! behind, new blocks are dropped whole (the files stay valid, with a gap; a file's first block,
//! with the FLV header, is never dropped), counted in [`Stats::dropped`] and logged once per
//! episode.
//!
//! ## Failures
//! Any error creating, writing or syncing a file (a full disk, `EIO` from a failing card) stops
//! this recording: one error line in the log, [`Stats::failures`] counts it, [`Recorder::stopped`]
//! says why (on the next call after the writer thread met it), and every later call returns at
//! once. The stream itself never sees it.

use std::collections::VecDeque;
use std::fmt;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{mpsc, Arc};
use std::thread;
use std::time::{SystemTime, UNIX_EPOCH};

use zerocast_core::adts::{self, AdtsHeader};
use zerocast_core::flv::{self, AacPacketType, SoundFormat};

/// Size of each file's write buffer: one write (and one `fdatasync`) per this many bytes.
pub const BLOCK_BYTES: usize = 256 * 1024;
/// Buffered audio is written and synced once it spans this much stream time: the most a power
/// cut can lose.
pub const SYNC_MS: u32 = 10_000;
/// Blocks handed to the writer thread and not yet on the card before new ones are dropped: what
/// a stalled card can cost in memory (two blocks per recorder, beside the two being filled).
pub const MAX_BLOCKS_IN_FLIGHT: usize = 2;
const MIB: u64 = 1024 * 1024;
/// A buffer's capacity: a block and the largest message that may overshoot it.
const BUFFER_CAPACITY: usize = BLOCK_BYTES + 64 * 1024;
/// errno values for errors std reports without one.
const ENOSPC: i32 = 28;
const EPIPE: i32 = 32;

/// How a stream is recorded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Settings {
    /// Start a new file after this many seconds of stream time; 0: never by time.
    pub interval_s: u32,
    /// Start a new file before one would grow past this many MiB; 0: no limit.
    pub max_mb: u32,
    /// Delete this stream's oldest files while all of them together hold more than this many
    /// MiB; 0: keep everything.
    pub keep_mb: u32,
    /// Also write the audio as `.aac` (ADTS) or `.mp3` beside the FLV when the codec is AAC
    /// (LC, main, SSR or LTP with a channel configuration) or MP3.
    pub raw: bool,
}

/// Counters for the status line and metrics.
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
    /// Old files deleted to stay under `keep_mb`.
    pub deleted: u64,
    /// Bytes dropped because the card was [`MAX_BLOCKS_IN_FLIGHT`] blocks behind.
    pub dropped: u64,
    /// Recordings stopped by an error (0 or 1 for one recorder).
    pub failures: u64,
}

/// Why a recording stopped.
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
    /// The writer thread could not be started (or is gone: `EPIPE`).
    Thread {
        /// The errno.
        errno: i32,
    },
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
                return write!(f, "writer thread: {e}");
            }
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

/// Which of a segment's two files an operation is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Slot {
    Flv = 0,
    Raw = 1,
}

/// One file being written and its buffer.
struct Output {
    slot: Slot,
    path: PathBuf,
    buf: Vec<u8>,
    /// Bytes handed to the writer plus the buffer.
    size: u64,
    /// Whether its first block (an FLV's file header) has been handed over: that one is never
    /// dropped, or the file could not be read at all.
    started: bool,
}

/// The files being written now.
struct Segment {
    seq: u64,
    flv: Output,
    raw: Option<(Raw, Output)>,
    /// The SoundFormat nibble of the audio in it: another codec starts a new file.
    format: u8,
    /// Stream timestamp of its first audio (its time 0).
    epoch: u32,
    /// Its latest tag timestamp, so that its timestamps never go back.
    last: u32,
    /// Stream timestamp of the oldest audio not yet written.
    buffered_since: Option<u32>,
}

impl Segment {
    fn size(&self) -> u64 {
        self.flv.size + self.raw.as_ref().map_or(0, |(_, out)| out.size)
    }
}

/// A closed file of this stream, for the `keep_mb` accounting.
struct Archived {
    seq: u64,
    path: PathBuf,
    size: u64,
}

/// Records one stream. See the module documentation for the files and the write policy.
pub struct Recorder {
    dir: PathBuf,
    stream: String,
    prefix: String,
    settings: Settings,
    metadata: Vec<u8>,
    sequence_header: Vec<u8>,
    segment: Option<Segment>,
    next_seq: u64,
    archive: VecDeque<Archived>,
    stats: Stats,
    stopped: Option<RecordError>,
    writer: Option<Writer>,
    /// Bytes dropped in the current episode of a card that does not keep up.
    dropping: Option<u64>,
}

impl Recorder {
    /// A recorder of `stream_name` (`live/audio`) into `dir`, created if missing. Files of the
    /// same stream already there count towards `keep_mb` and the numbering goes on after them.
    /// No file is created before the first audio.
    pub fn new(dir: &Path, stream_name: &str, settings: Settings) -> Result<Recorder, RecordError> {
        let dir_error = |e: io::Error| RecordError::Dir {
            path: dir.to_owned(),
            errno: errno(&e),
        };
        fs::create_dir_all(dir).map_err(dir_error)?;
        let prefix: String = stream_name
            .chars()
            .map(|c| match c {
                'a'..='z' | 'A'..='Z' | '0'..='9' | '.' | '_' => c,
                _ => '_',
            })
            .collect();
        let mut archive = Vec::new();
        for entry in fs::read_dir(dir).map_err(dir_error)? {
            let entry = entry.map_err(dir_error)?;
            let name = entry.file_name();
            let Some(seq) = name.to_str().and_then(|n| sequence_number(&prefix, n)) else {
                continue;
            };
            let size = entry.metadata().map_or(0, |m| m.len());
            archive.push(Archived {
                seq,
                path: entry.path(),
                size,
            });
        }
        archive.sort_by_key(|a| a.seq);
        let next_seq = archive.last().map_or(1, |a| a.seq + 1);
        let writer = Writer::start(dir, stream_name)?;
        Ok(Recorder {
            dir: dir.to_owned(),
            stream: stream_name.to_owned(),
            prefix,
            settings,
            metadata: Vec::new(),
            sequence_header: Vec::new(),
            segment: None,
            next_seq,
            archive: archive.into(),
            stats: Stats::default(),
            stopped: None,
            writer: Some(writer),
            dropping: None,
        })
    }

    /// The stream's metadata message body (`onMetaData` + ECMA array, with or without a leading
    /// `@setDataFrame`): kept for the head of every file from the next one on. It is not written
    /// into the current file: ffmpeg's flvdec takes an `onMetaData` tag at a time other than 0
    /// for a subtitle stream (`flv_read_packet`), and players would show one.
    pub fn metadata(&mut self, on_metadata_body: &[u8]) {
        self.poll_writer();
        if self.stopped.is_some() {
            return;
        }
        self.metadata = without_set_data_frame(on_metadata_body).to_vec();
        zero_number(&mut self.metadata, b"duration");
        zero_number(&mut self.metadata, b"filesize");
    }

    /// The AAC sequence header (the whole audio tag body: `AF 00` + AudioSpecificConfig): kept
    /// for the head of every AAC file, and written to the current one if it is AAC (a new one
    /// starts a new file when its ADTS framing differs).
    pub fn sequence_header(&mut self, body: &[u8]) {
        self.poll_writer();
        if self.stopped.is_some() || self.sequence_header == body {
            return;
        }
        self.sequence_header = body.to_vec();
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
        self.poll_writer();
        if self.stopped.is_some() {
            return;
        }
        let format = first >> 4;
        let aac = format == SoundFormat::Aac as u8;
        if aac && flv_audio_body.get(1) == Some(&(AacPacketType::SequenceHeader as u8)) {
            self.sequence_header(flv_audio_body);
            return;
        }
        if let Some(segment) = &self.segment {
            let elapsed = timestamp_ms.wrapping_sub(segment.epoch);
            let interval = u64::from(self.settings.interval_s) * 1000;
            let by_time = interval > 0 && u64::from(elapsed) >= interval && elapsed < 1 << 31;
            let limit = u64::from(self.settings.max_mb) * MIB;
            let tag_len = (flv::TAG_HEADER_LEN + flv_audio_body.len() + 4) as u64;
            let by_size = limit > 0 && segment.flv.size + tag_len > limit;
            if by_time || by_size || segment.format != format {
                self.close();
                if self.stopped.is_some() {
                    return;
                }
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

    /// Hands what is buffered to the writer thread, to be written and synced (also done on
    /// drop). Call it when the stream stops sending audio for a while (its publisher left and
    /// no silence is made).
    pub fn flush(&mut self) {
        self.poll_writer();
        let Some(segment) = &mut self.segment else {
            return;
        };
        let Some(writer) = &self.writer else {
            return;
        };
        segment.buffered_since = None;
        let mut lost = false;
        let (flv, raw) = (&mut segment.flv, segment.raw.as_mut().map(|(_, out)| out));
        for out in std::iter::once(flv).chain(raw) {
            if out.buf.is_empty() {
                continue;
            }
            if out.started && writer.in_flight.load(Ordering::Acquire) >= MAX_BLOCKS_IN_FLIGHT {
                let len = out.buf.len() as u64;
                out.buf.clear();
                out.size -= len;
                self.stats.dropped += len;
                if self.dropping.is_none() {
                    log::warn!(
                        "recording {}: the card is {} blocks behind; dropping audio",
                        self.stream,
                        MAX_BLOCKS_IN_FLIGHT
                    );
                }
                *self.dropping.get_or_insert(0) += len;
                continue;
            }
            if let Some(dropped) = self.dropping.take() {
                log::warn!(
                    "recording {}: the card caught up after {} KiB were dropped",
                    self.stream,
                    dropped / 1024
                );
            }
            writer.in_flight.fetch_add(1, Ordering::AcqRel);
            out.started = true;
            let data = std::mem::replace(&mut out.buf, Vec::with_capacity(BUFFER_CAPACITY));
            lost |= writer
                .ops
                .send(Op::Write {
                    slot: out.slot,
                    data,
                })
                .is_err();
        }
        if lost {
            self.stop(RecordError::Thread { errno: EPIPE });
        }
        self.trim();
    }

    /// Blocks until the writer thread has written and synced everything handed to it (or
    /// failed), and takes note of a failure. For shutdown and tests; the loop never waits.
    pub fn wait(&mut self) {
        let (done, finished) = mpsc::channel();
        self.send(Op::Idle(done));
        // An Err means the thread is gone, which the next poll reports.
        let _ = finished.recv();
        self.poll_writer();
    }

    /// The counters.
    pub fn stats(&self) -> Stats {
        let mut stats = self.stats;
        if let Some(writer) = &self.writer {
            let c = &writer.counters;
            stats.bytes = c.bytes.load(Ordering::Relaxed);
            stats.writes = c.writes.load(Ordering::Relaxed);
            stats.syncs = c.syncs.load(Ordering::Relaxed);
            stats.deleted = c.deleted.load(Ordering::Relaxed);
        }
        stats
    }

    /// Why the recording stopped, if it did.
    pub fn stopped(&self) -> Option<&RecordError> {
        self.stopped.as_ref()
    }

    /// The files being written now (the FLV first).
    pub fn current_files(&self) -> Vec<&Path> {
        self.segment.as_ref().map_or_else(Vec::new, |s| {
            std::iter::once(s.flv.path.as_path())
                .chain(s.raw.as_ref().map(|(_, out)| out.path.as_path()))
                .collect()
        })
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

    /// Starts new files at stream time `epoch` with the file header, metadata and sequence
    /// header.
    fn open(&mut self, epoch: u32, format: u8) {
        let seq = self.next_seq;
        self.next_seq += 1;
        let base = format!("{}-{seq:06}-{}", self.prefix, utc_stamp(SystemTime::now()));
        let raw = match format {
            _ if !self.settings.raw => None,
            f if f == SoundFormat::Mp3 as u8 => Some(Raw::Mp3),
            f if f == SoundFormat::Aac as u8 => Raw::adts(&self.sequence_header),
            _ => None,
        };
        let flv_out = self.create(&base, "flv", Slot::Flv);
        let raw_out = raw.map(|r| (r, self.create(&base, r.extension(), Slot::Raw)));
        let mut header = [0u8; flv::FILE_HEADER_LEN];
        let _ = flv::encode_file_header(&mut header, true, false);
        let mut segment = Segment {
            seq,
            flv: flv_out,
            raw: raw_out,
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
        log::info!(
            "recording {} to {}",
            self.stream,
            self.current_files()
                .iter()
                .map(|p| p.display().to_string())
                .collect::<Vec<_>>()
                .join(" and ")
        );
    }

    /// Has the writer create `<base>.<extension>` for `slot`.
    fn create(&mut self, base: &str, extension: &str, slot: Slot) -> Output {
        let path = self.dir.join(format!("{base}.{extension}"));
        self.stats.files += 1;
        self.send(Op::Open {
            slot,
            path: path.clone(),
        });
        Output {
            slot,
            path,
            buf: Vec::with_capacity(BUFFER_CAPACITY),
            size: 0,
            started: false,
        }
    }

    /// Hands the rest to the writer and closes the current files; they join the archive.
    fn close(&mut self) {
        self.flush();
        if self.segment.is_some() {
            self.send(Op::Close);
        }
        if let Some(segment) = self.segment.take() {
            let seq = segment.seq;
            for out in std::iter::once(segment.flv).chain(segment.raw.map(|(_, out)| out)) {
                self.archive.push_back(Archived {
                    seq,
                    path: out.path,
                    size: out.size,
                });
            }
        }
    }

    /// Deletes the oldest closed files while the stream's files exceed `keep_mb`.
    fn trim(&mut self) {
        let keep = u64::from(self.settings.keep_mb) * MIB;
        if keep == 0 {
            return;
        }
        let current = self.segment.as_ref().map_or(0, Segment::size);
        let mut total = current + self.archive.iter().map(|a| a.size).sum::<u64>();
        while total > keep {
            let Some(oldest) = self.archive.pop_front() else {
                break;
            };
            total -= oldest.size;
            log::debug!(
                "recording {}: deleting {} (seq {})",
                self.stream,
                oldest.path.display(),
                oldest.seq
            );
            self.send(Op::Delete(oldest.path));
        }
    }

    /// Hands an operation to the writer thread; a thread that is gone stops the recording.
    fn send(&mut self, op: Op) {
        let sent = self.writer.as_ref().map(|w| w.ops.send(op));
        if let Some(Err(_)) = sent {
            self.stop(RecordError::Thread { errno: EPIPE });
        }
    }

    /// Takes note of an error the writer thread met.
    fn poll_writer(&mut self) {
        let error = self.writer.as_ref().and_then(|w| w.errors.try_recv().ok());
        if let Some(error) = error {
            self.stop(error);
        }
    }

    /// Stops the recording: one log line, one failure counted, files closed, the writer ended.
    fn stop(&mut self, error: RecordError) {
        if self.stopped.is_some() {
            return;
        }
        log::error!("recording {} stopped: {error}", self.stream);
        self.stats = self.stats();
        self.stats.failures += 1;
        self.segment = None;
        self.stopped = Some(error);
        self.end_writer();
    }

    /// Ends the writer thread after what it was handed, and waits for it.
    fn end_writer(&mut self) {
        if let Some(Writer { ops, thread, .. }) = self.writer.take() {
            drop(ops);
            // A thread that panicked has nothing more to say: the recording is over either way.
            let _ = thread.join();
        }
    }
}

impl Drop for Recorder {
    /// Hands the buffers over and waits for the writer to finish: on a clean shutdown the last
    /// audio is on the card (a card that hangs holds the process up until systemd kills it).
    fn drop(&mut self) {
        self.flush();
        self.end_writer();
    }
}

/// What the writer thread is asked to do, in order.
enum Op {
    /// Create a file (new, mode 0640) for a slot, and sync the directory so its name survives.
    Open { slot: Slot, path: PathBuf },
    /// Write a block to a slot's file and `fdatasync` it.
    Write { slot: Slot, data: Vec<u8> },
    /// Close both files.
    Close,
    /// Delete an old file.
    Delete(PathBuf),
    /// Report that everything before has been done.
    Idle(mpsc::Sender<()>),
}

/// Counters the writer thread keeps.
#[derive(Default)]
struct Counters {
    bytes: AtomicU64,
    writes: AtomicU64,
    syncs: AtomicU64,
    deleted: AtomicU64,
}

/// The recorder's end of its writer thread.
struct Writer {
    ops: mpsc::Sender<Op>,
    errors: mpsc::Receiver<RecordError>,
    counters: Arc<Counters>,
    /// Write operations sent and not yet done.
    in_flight: Arc<AtomicUsize>,
    thread: thread::JoinHandle<()>,
}

impl Writer {
    fn start(dir: &Path, stream: &str) -> Result<Writer, RecordError> {
        let (ops, ops_rx) = mpsc::channel();
        let (errors_tx, errors) = mpsc::channel();
        let counters = Arc::new(Counters::default());
        let in_flight = Arc::new(AtomicUsize::new(0));
        let state = WriterThread {
            dir: dir.to_owned(),
            stream: stream.to_owned(),
            counters: Arc::clone(&counters),
            in_flight: Arc::clone(&in_flight),
            files: [None, None],
        };
        let thread = thread::Builder::new()
            .name("record".to_owned())
            // The thread only moves buffers around: a small stack.
            .stack_size(64 * 1024)
            .spawn(move || {
                // Signals are the event loop's (a signalfd): a writer thread that could take
                // SIGTERM would let its default action kill the process without a clean stop.
                let _ = nix::sys::signal::SigSet::all().thread_block();
                state.run(&ops_rx, &errors_tx)
            })
            .map_err(|e| RecordError::Thread { errno: errno(&e) })?;
        Ok(Writer {
            ops,
            errors,
            counters,
            in_flight,
            thread,
        })
    }
}

/// The writer thread's state.
struct WriterThread {
    dir: PathBuf,
    stream: String,
    counters: Arc<Counters>,
    in_flight: Arc<AtomicUsize>,
    files: [Option<(File, PathBuf)>; 2],
}

impl WriterThread {
    /// Does the operations until the recorder hangs up; after the first error only `Idle` is
    /// answered (and blocks are let go), the error having been sent once.
    fn run(mut self, ops: &mpsc::Receiver<Op>, errors: &mpsc::Sender<RecordError>) {
        let mut failed = false;
        for op in ops {
            let result = match op {
                Op::Idle(done) => {
                    let _ = done.send(());
                    Ok(())
                }
                Op::Write { slot, data } => {
                    let result = if failed {
                        Ok(())
                    } else {
                        self.write(slot, &data)
                    };
                    self.in_flight.fetch_sub(1, Ordering::AcqRel);
                    result
                }
                _ if failed => Ok(()),
                Op::Open { slot, path } => self.open(slot, path),
                Op::Close => {
                    self.files = [None, None];
                    Ok(())
                }
                Op::Delete(path) => {
                    self.delete(&path);
                    Ok(())
                }
            };
            if let Err(e) = result {
                failed = true;
                self.files = [None, None];
                let _ = errors.send(e);
            }
        }
    }

    fn open(&mut self, slot: Slot, path: PathBuf) -> Result<(), RecordError> {
        let file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o640)
            .open(&path)
            .map_err(|e| RecordError::Create {
                path: path.clone(),
                errno: errno(&e),
            })?;
        self.counters.syncs.fetch_add(1, Ordering::Relaxed);
        File::open(&self.dir)
            .and_then(|d| d.sync_all())
            .map_err(|e| RecordError::Sync {
                path: self.dir.clone(),
                errno: errno(&e),
            })?;
        self.files[slot as usize] = Some((file, path));
        Ok(())
    }

    /// Writes a block (counting each `write` call) and syncs its data.
    fn write(&mut self, slot: Slot, data: &[u8]) -> Result<(), RecordError> {
        let Some((file, path)) = &mut self.files[slot as usize] else {
            return Ok(());
        };
        let error = |errno| RecordError::Write {
            path: path.clone(),
            errno,
        };
        let mut at = 0;
        while at < data.len() {
            self.counters.writes.fetch_add(1, Ordering::Relaxed);
            match file.write(&data[at..]) {
                // A regular file that takes nothing is full.
                Ok(0) => return Err(error(ENOSPC)),
                Ok(n) => {
                    at += n;
                    self.counters.bytes.fetch_add(n as u64, Ordering::Relaxed);
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(error(errno(&e))),
            }
        }
        self.counters.syncs.fetch_add(1, Ordering::Relaxed);
        file.sync_data().map_err(|e| RecordError::Sync {
            path: path.clone(),
            errno: errno(&e),
        })
    }

    fn delete(&self, path: &Path) {
        match fs::remove_file(path) {
            Ok(()) => {
                self.counters.deleted.fetch_add(1, Ordering::Relaxed);
            }
            // Removed by someone else: nothing to do.
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            // Not fatal to the recording; it is forgotten rather than retried forever.
            Err(e) => log::warn!(
                "recording {}: cannot delete {}: {e}",
                self.stream,
                path.display()
            ),
        }
    }
}

/// The sequence number of one of this stream's files: `<prefix>-<digits>-….{flv,aac,mp3}`.
fn sequence_number(prefix: &str, name: &str) -> Option<u64> {
    let rest = name.strip_prefix(prefix)?.strip_prefix('-')?;
    let (digits, rest) = rest.split_once('-')?;
    let known = [".flv", ".aac", ".mp3"].iter().any(|e| rest.ends_with(e));
    (known && !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()))
        .then(|| digits.parse().ok())
        .flatten()
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

    #[test]
    fn odd_bodies_neither_panic_nor_stop_the_recording() {
        let dir = std::env::temp_dir().join(format!("zerocast-record-odd-{}", std::process::id()));
        let settings = Settings {
            interval_s: 1,
            max_mb: 1,
            keep_mb: 1,
            raw: true,
        };
        let mut recorder = Recorder::new(&dir, "live/odd", settings).unwrap();
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
        assert_eq!(recorder.stopped(), None);
        assert!(recorder.stats().files > 1);
        drop(recorder);
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
    fn sequence_numbers_of_this_streams_files_only() {
        assert_eq!(
            sequence_number("live_a", "live_a-000042-20261206T063000Z.flv"),
            Some(42)
        );
        assert_eq!(
            sequence_number("live_a", "live_a-1234567-x.aac"),
            Some(1_234_567)
        );
        assert_eq!(sequence_number("live_a", "live_ab-000001-x.flv"), None);
        assert_eq!(sequence_number("live_a", "live_a-000001-x.txt"), None);
        assert_eq!(sequence_number("live_a", "live_a--x.flv"), None);
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
