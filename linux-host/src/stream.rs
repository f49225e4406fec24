//! One live stream of the [`Hub`](crate::hub::Hub): its ring, its sticky AAC sequence header and
//! metadata, its publisher, and the clock that keeps its timestamps going forward whoever
//! publishes.
//!
//! Every publisher — the local capture or an RTMP peer — takes the same path in:
//! [`Stream::push_audio`] with an FLV audio tag body and the publisher's own timestamp. The
//! stream maps that timestamp onto its own timeline (never backwards, no jump when a publisher
//! is replaced), chunk-encodes the message once ([`zerocast_core::session::encode_media`]) and
//! pushes it into the ring every player's cursor reads.

use zerocast_core::adts::AdtsHeader;
use zerocast_core::codec::{AdpcmSwf, BlockEncoder};
use zerocast_core::flv::{AacPacketType, AudioTagHeader, SoundFormat};
use zerocast_core::ring::{Cursor, Ring};
use zerocast_core::session::{encode_media, media_len, Media};
use zerocast_core::time::Instant;

use crate::formats::HttpOut;
use crate::record::Recorder;

/// Bytes of pre-chunked audio each stream's ring keeps: about 3 s of 44.1 kHz stereo PCM
/// (176 kB/s), far more of any compressed codec. Bounds both the join buffer and how far a slow
/// player may fall behind.
pub const RING_BYTES: usize = 512 * 1024;
/// Messages the ring indexes: 3 s of 5 ms periods.
pub const RING_SLOTS: usize = 600;

/// The ring type every player reads.
pub type AudioRing = Ring<RING_BYTES, RING_SLOTS>;

/// The outgoing chunk size, announced to every player at connect (nginx-rtmp's `chunk_size
/// 4096`): a 20 ms PCM period (3529 B) fits one chunk.
pub const CHUNK_SIZE: u32 = 4096;

/// Largest sticky message kept (sequence header, metadata): a publisher's onMetaData beyond this
/// is not kept (its audio still flows).
pub const MAX_STICKY: usize = 4096;

/// A gap between two publisher timestamps larger than this is a jump, not a pause: the stream
/// goes on one message later instead of leaving players a hole (or a rewind) to wait through.
const MAX_STEP_MS: u64 = 1000;

/// How long the silence a stream makes for itself is per message.
const SILENCE_MESSAGE_MS: u64 = 20;

/// Who feeds a stream.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Publisher {
    /// Nobody: the stream fills itself with silence while it has players.
    None,
    /// The local capture (ALSA, stdin or the tone): never replaced by a peer.
    Capture,
    /// An RTMP peer, by connection index.
    Peer(usize),
}

/// The stream's timeline: publisher timestamps in, stream timestamps out, built from the
/// publisher's deltas so that it never goes back and a new publisher continues where the old
/// one stopped.
#[derive(Clone, Copy, Debug, Default)]
struct Clock {
    /// The last stream timestamp written, if any.
    last_out: Option<u64>,
    /// The publisher timestamp of the last message, `None` after a change of publisher.
    last_in: Option<u32>,
    /// The last step between two messages, the step used after a jump or a new publisher.
    step: u64,
}

impl Clock {
    fn map(&mut self, ts_in: u32) -> u64 {
        let out = match (self.last_out, self.last_in) {
            (None, _) => 0,
            (Some(last), None) => last + self.step.max(1),
            (Some(last), Some(prev)) => {
                // Publisher timestamps are 32-bit and wrap (49.7 days): the signed difference.
                let delta = i64::from(ts_in.wrapping_sub(prev) as i32);
                if delta < 0 {
                    last
                } else if delta as u64 > MAX_STEP_MS {
                    last + self.step
                } else {
                    if delta > 0 {
                        self.step = delta as u64;
                    }
                    last + delta as u64
                }
            }
        };
        self.last_out = Some(out);
        self.last_in = Some(ts_in);
        out
    }

    /// A new publisher (or silence) continues after the last message.
    fn rebase(&mut self) {
        self.last_in = None;
    }
}

/// One message of silence in the stream's codec, made once and pushed as often as needed.
struct Silence {
    /// The FLV audio tag body.
    body: Vec<u8>,
    /// Its duration.
    ms: u64,
}

/// A raw AAC-LC frame of 1024 silent samples, one single channel element: no spectral data
/// (`max_sfb` 0), so the same bits decode as silence at every sampling rate. These are the bits
/// an AAC encoder emits for digital silence (ffmpeg's native encoder, checked by decoding).
const AAC_SILENT_MONO: [u8; 4] = [0x01, 0x18, 0x20, 0x07];
/// The same for a channel pair element (two channels).
const AAC_SILENT_STEREO: [u8; 6] = [0x21, 0x10, 0x04, 0x60, 0x8C, 0x1C];

/// One live stream.
pub struct Stream {
    app: String,
    name: String,
    ring: Box<AudioRing>,
    /// The AAC sequence header as the publisher sent it (FLV audio tag body), empty if none.
    sequence_header: Vec<u8>,
    /// `onMetaData` (AMF0 body from the string on), empty if none.
    metadata: Vec<u8>,
    publisher: Publisher,
    clock: Clock,
    /// The header byte of the last audio message, for the silence generator and the status.
    last_header: Option<u8>,
    silence: Option<Silence>,
    /// Core time and stream time when the stream lost its publisher: silence is generated so
    /// that stream time keeps pace with the clock from there.
    orphaned: Option<(Instant, u64)>,
    /// Players (and relays) reading the ring, by connection index.
    readers: Vec<usize>,
    /// Messages pushed since start.
    messages: u64,
    /// The recording of this stream, if one is configured.
    recorder: Option<Recorder>,
    /// Whether the server has an HTTP listener: only then are renditions made.
    http_enabled: bool,
    /// The HTTP renditions, made at the first audio (their formats depend on the codec).
    http: Option<Box<HttpOut>>,
    /// The title HTTP listeners see, and how often it changed.
    title: String,
    title_generation: u64,
}

impl Stream {
    /// An empty stream `app/name` with no publisher.
    pub fn new(app: &str, name: &str) -> Self {
        Self {
            app: app.to_owned(),
            name: name.to_owned(),
            ring: Box::new(AudioRing::new()),
            sequence_header: Vec::new(),
            metadata: Vec::new(),
            publisher: Publisher::None,
            clock: Clock::default(),
            last_header: None,
            silence: None,
            orphaned: None,
            readers: Vec::new(),
            messages: 0,
            recorder: None,
            http_enabled: false,
            http: None,
            title: String::new(),
            title_generation: 0,
        }
    }

    /// Makes HTTP renditions from the next audio on (the server listens for HTTP).
    pub fn enable_http(&mut self) {
        self.http_enabled = true;
    }

    /// The HTTP renditions, once the stream has audio.
    pub fn http(&self) -> Option<&HttpOut> {
        self.http.as_deref()
    }

    /// The title of the stream for HTTP listeners (ICY `StreamTitle`).
    pub fn title(&self) -> &str {
        &self.title
    }

    /// How many times the title changed: listeners compare it with the one they last sent.
    pub fn title_generation(&self) -> u64 {
        self.title_generation
    }

    /// Sets the title (Icecast's admin `updinfo`, or `--title` at start).
    pub fn set_title(&mut self, title: &str) {
        if title != self.title {
            title.clone_into(&mut self.title);
            self.title_generation += 1;
        }
    }

    /// Feeds one audio message at stream time `time` to the HTTP renditions, making them at
    /// the first audio and again when the codec changes (another publisher).
    fn feed_http(&mut self, time: u64, body: &[u8]) {
        if !self.http_enabled {
            return;
        }
        let Some(header) = body
            .first()
            .and_then(|b| AudioTagHeader::from_byte(*b).ok())
        else {
            return;
        };
        let is_config = header.format == SoundFormat::Aac
            && body.get(1) == Some(&(AacPacketType::SequenceHeader as u8));
        if !is_config && !self.http.as_ref().is_some_and(|h| h.fits(header)) {
            let previous = self.http.as_deref();
            let mut http = HttpOut::new(header, self.sequence_header.get(2..), previous);
            http.set_metadata(&self.metadata);
            if !self.sequence_header.is_empty() {
                http.push(time, &self.sequence_header);
            }
            self.http = Some(Box::new(http));
        }
        if let Some(http) = &mut self.http {
            http.push(time, body);
        }
    }

    /// Records everything the stream carries from now on (its own silence too, on its clock).
    pub fn record(&mut self, recorder: Recorder) {
        self.recorder = Some(recorder);
    }

    /// The recorder, for its counters.
    pub fn recorder(&self) -> Option<&Recorder> {
        self.recorder.as_ref()
    }

    /// The application name.
    pub fn app(&self) -> &str {
        &self.app
    }

    /// The stream name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Whether this is `app/name`.
    pub fn is(&self, app: &str, name: &str) -> bool {
        self.app == app && self.name == name
    }

    /// The ring players read.
    pub fn ring(&self) -> &AudioRing {
        &self.ring
    }

    /// Who publishes now.
    pub fn publisher(&self) -> Publisher {
        self.publisher
    }

    /// Connection indices of the readers.
    pub fn readers(&self) -> &[usize] {
        &self.readers
    }

    /// Adds a reader.
    pub fn add_reader(&mut self, conn: usize) {
        if !self.readers.contains(&conn) {
            self.readers.push(conn);
        }
    }

    /// Removes a reader.
    pub fn remove_reader(&mut self, conn: usize) {
        self.readers.retain(|&c| c != conn);
    }

    /// The length of the latest message, as the step between the last two timestamps.
    pub fn step_ms(&self) -> u64 {
        self.clock.step
    }

    /// Audio messages pushed since the stream was created.
    pub fn messages(&self) -> u64 {
        self.messages
    }

    /// The header byte of the latest audio, for `/stat`-like reports.
    pub fn last_header(&self) -> Option<AudioTagHeader> {
        self.last_header
            .and_then(|b| AudioTagHeader::from_byte(b).ok())
    }

    /// The AudioSpecificConfig of an AAC stream (empty for other codecs, or before the
    /// sequence header).
    pub fn aac_config(&self) -> &[u8] {
        self.sequence_header.get(2..).unwrap_or(&[])
    }

    /// The sample rate from the AAC configuration (the header byte cannot say 48 kHz).
    pub fn true_rate(&self) -> Option<u32> {
        aac_lc(self.sequence_header.get(2..)?).map(|c| c.sample_rate())
    }

    /// The channel count from the AAC configuration.
    pub fn true_channels(&self) -> Option<u8> {
        aac_lc(self.sequence_header.get(2..)?).map(|c| c.channel_config)
    }

    /// Nobody publishes and nobody listens: the table may free it.
    pub fn is_idle(&self) -> bool {
        self.publisher == Publisher::None && self.readers.is_empty()
    }

    /// `publisher` now feeds the stream. Returns the previous publisher; the timeline goes on.
    pub fn set_publisher(&mut self, publisher: Publisher) -> Publisher {
        self.clock.rebase();
        self.orphaned = None;
        std::mem::replace(&mut self.publisher, publisher)
    }

    /// The publisher left at `now`: from here the stream makes its own silence (see
    /// [`fill_silence`](Self::fill_silence)) so that players keep a running clock.
    pub fn orphan(&mut self, now: Instant) {
        self.publisher = Publisher::None;
        self.clock.rebase();
        let last = self.ring.latest_time().unwrap_or(0);
        self.orphaned = Some((now, last));
    }

    /// Keeps the sequence header or metadata of the publisher; bodies beyond [`MAX_STICKY`]
    /// are not kept.
    pub fn set_metadata(&mut self, body: &[u8]) {
        if body.len() <= MAX_STICKY {
            self.metadata.clear();
            self.metadata.extend_from_slice(body);
            if let Some(recorder) = self.recorder.as_mut() {
                recorder.metadata(body);
            }
            if let Some(http) = &mut self.http {
                http.set_metadata(body);
            }
        }
    }

    /// One audio message from the publisher: an FLV audio tag body at the publisher's
    /// `timestamp`. An AAC sequence header is kept (and passed on to the players already
    /// listening), everything else goes into the ring.
    pub fn push_audio(&mut self, timestamp: u32, body: &[u8]) {
        let Some(&header) = body.first() else {
            return;
        };
        let is_aac = header >> 4 == SoundFormat::Aac as u8;
        if is_aac && body.get(1) == Some(&(AacPacketType::SequenceHeader as u8)) {
            if body.len() <= MAX_STICKY && body != self.sequence_header.as_slice() {
                self.sequence_header.clear();
                self.sequence_header.extend_from_slice(body);
                if let Some(recorder) = self.recorder.as_mut() {
                    recorder.sequence_header(body);
                }
                self.feed_http(self.clock.last_out.unwrap_or(0), body);
                if self.messages > 0 {
                    // A new configuration mid-stream: players listening need it before the next
                    // frame (a new publisher of another rate or channel count).
                    let time = self.clock.last_out.unwrap_or(0);
                    self.push_encoded(time, Media::Audio, &self.sequence_header.clone());
                }
            }
            return;
        }
        if self.last_header != Some(header) {
            self.last_header = Some(header);
            self.silence = Silence::for_header(header, self.sequence_header.get(2..));
        }
        let time = self.clock.map(timestamp);
        self.push_encoded(time, Media::Audio, body);
        self.messages += 1;
    }

    fn push_encoded(&mut self, time: u64, media: Media, body: &[u8]) {
        // RTMP timestamps are 32-bit milliseconds and wrap after 49.7 days (players handle it).
        let ts = time as u32;
        if let (Some(recorder), Media::Audio) = (self.recorder.as_mut(), media) {
            recorder.audio(ts, body);
        }
        let len = media_len(CHUNK_SIZE, media, ts, body.len());
        // A body the ring cannot hold (larger than the arena) is dropped; the chunk reader's
        // message limit keeps peers far below that.
        let _ = self.ring.push_with(time, len, |buf| {
            // The length was computed for exactly this header and body.
            let _ = encode_media(buf, CHUNK_SIZE, media, ts, body);
        });
        if media == Media::Audio {
            self.feed_http(time, body);
        }
    }

    /// Generates silence for an orphaned stream up to `now`: returns whether anything was
    /// pushed. Only while it has readers (an unheard stream need not tick).
    pub fn fill_silence(&mut self, now: Instant) -> bool {
        let Some((since, from)) = self.orphaned else {
            return false;
        };
        if self.readers.is_empty() {
            return false;
        }
        let target = from + now.saturating_millis_since(since);
        let mut pushed = false;
        loop {
            let next = self
                .clock
                .last_out
                .map_or(0, |t| t + self.clock.step.max(1));
            if next > target {
                return pushed;
            }
            let Some(silence) = &self.silence else {
                return pushed;
            };
            let ms = silence.ms;
            self.clock.step = ms;
            let time = self.clock.last_out.map_or(0, |t| t + ms);
            self.clock.last_out = Some(time);
            // Moved out and back: `push_encoded` borrows the stream mutably.
            let body = self.silence.take().map(|s| s.body).unwrap_or_default();
            self.push_encoded(time, Media::Audio, &body);
            self.silence = Some(Silence { body, ms });
            self.messages += 1;
            pushed = true;
        }
    }

    /// The next instant silence is due, for the loop's timer.
    pub fn silence_deadline(&self) -> Option<Instant> {
        let (since, from) = self.orphaned?;
        if self.readers.is_empty() || self.silence.is_none() {
            return None;
        }
        let next = self
            .clock
            .last_out
            .map_or(0, |t| t + self.clock.step.max(1));
        Some(since.saturating_add_millis(next.saturating_sub(from)))
    }

    /// Where a joining player starts: `join_ms` behind the newest message (the join buffer), so
    /// players that buffer before they start (VLC, PotPlayer) start at once.
    pub fn join_cursor(&self, join_ms: u64) -> Cursor {
        crate::egress::join(&self.ring, join_ms)
    }

    /// What a player is sent before the ring: the sequence header (AAC), the first message
    /// (`first`, already chunk-encoded from the ring, at stream time `time`), then `onMetaData`
    /// — ffmpeg's flvdec stops probing on metadata that comes after the first audio tag
    /// (protocol-notes section 6). Appended to `out`.
    pub fn start_bytes(&self, first: &[u8], time: u64, out: &mut Vec<u8>) {
        let ts = time as u32;
        append_media(out, Media::Audio, ts, &self.sequence_header);
        out.extend_from_slice(first);
        // Metadata at time 0, as the capture's was always sent: ffmpeg's flvdec takes an
        // onMetaData tag at any other time for a subtitle stream.
        append_media(out, Media::Data, 0, &self.metadata);
    }
}

/// Appends `body` as a standalone media message (nothing for an empty body).
fn append_media(out: &mut Vec<u8>, media: Media, ts: u32, body: &[u8]) {
    if body.is_empty() {
        return;
    }
    let start = out.len();
    out.resize(start + media_len(CHUNK_SIZE, media, ts, body.len()), 0);
    let n = encode_media(&mut out[start..], CHUNK_SIZE, media, ts, body).unwrap_or(0);
    out.truncate(start + n);
}

impl Silence {
    /// The silence generator for audio with FLV header byte `header`; `asc` is the AAC
    /// AudioSpecificConfig when there is one.
    fn for_header(header: u8, asc: Option<&[u8]>) -> Option<Self> {
        let tag = AudioTagHeader::from_byte(header).ok()?;
        let channels: usize = if tag.stereo { 2 } else { 1 };
        let rate = tag.rate.hz() as usize;
        let frames = rate * SILENCE_MESSAGE_MS as usize / 1000;
        match tag.format {
            SoundFormat::PcmLe | SoundFormat::PcmPlatform => {
                let mut body =
                    vec![0u8; 1 + frames * channels * if tag.sixteen_bit { 2 } else { 1 }];
                body[0] = header;
                Some(Self {
                    body,
                    ms: SILENCE_MESSAGE_MS,
                })
            }
            SoundFormat::Adpcm => {
                // ADPCM of digital zero decodes to exactly zero (step index 0, codes 0).
                let mut enc = AdpcmSwf::new(tag.rate.hz(), channels as u8, 4).ok()?;
                let frames = enc.fit_frames(frames);
                let pcm = vec![0i16; frames * channels];
                let mut body = vec![0u8; 1 + enc.max_encoded_len(frames)];
                body[0] = header;
                let n = enc.encode(&pcm, &mut body[1..]).ok()?;
                body.truncate(1 + n);
                Some(Self {
                    body,
                    ms: (frames * 1000 / rate.max(1)) as u64,
                })
            }
            SoundFormat::Aac => {
                // The rate and channel count are in the AudioSpecificConfig, not the header
                // byte (which always says 44 kHz stereo for AAC).
                let config = asc.and_then(aac_lc)?;
                let frame: &[u8] = match config.channel_config {
                    1 => &AAC_SILENT_MONO,
                    2 => &AAC_SILENT_STEREO,
                    _ => return None,
                };
                let mut body = vec![header, AacPacketType::Raw as u8];
                body.extend_from_slice(frame);
                Some(Self {
                    body,
                    ms: u64::from(1024 * 1000 / config.sample_rate().max(1)),
                })
            }
            _ => None,
        }
    }
}

/// An AAC-LC AudioSpecificConfig's rate and channels (the core's ADTS reading of it); `None` for
/// other object types, whose silent frames zerocast does not know.
fn aac_lc(asc: &[u8]) -> Option<AdtsHeader> {
    AdtsHeader::from_audio_specific_config(asc)
        .ok()
        .filter(|c| c.object_type == 2)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clock_never_goes_back_and_continues_across_publishers() {
        let mut c = Clock::default();
        assert_eq!(c.map(5000), 0);
        assert_eq!(c.map(5020), 20);
        assert_eq!(c.map(4000), 20, "a jump back holds the clock");
        assert_eq!(c.map(4020), 40);
        assert_eq!(c.map(900_000), 60, "a jump ahead is one step");
        assert_eq!(c.map(900_020), 80);
        c.rebase();
        assert_eq!(c.map(0), 100, "a new publisher goes on one step later");
        assert_eq!(c.map(23), 123);
        // 32-bit wrap of the publisher's clock is a small step, not a jump back.
        c.rebase();
        assert_eq!(c.map(u32::MAX - 9), 146);
        assert_eq!(c.map(10), 166);
    }

    #[test]
    fn aac_config_parses_rate_and_channels() {
        let c = aac_lc(&[0x12, 0x10]).unwrap(); // LC, 44.1 kHz, stereo
        assert_eq!((c.sample_rate(), c.channel_config), (44_100, 2));
        let c = aac_lc(&[0x11, 0x88]).unwrap(); // LC, 48 kHz, mono
        assert_eq!((c.sample_rate(), c.channel_config), (48_000, 1));
        assert!(aac_lc(&[0x12]).is_none());
    }

    #[test]
    fn orphaned_pcm_stream_keeps_time_with_silence() {
        let mut s = Stream::new("live", "a");
        s.add_reader(7);
        let body = [0x3F, 1, 2, 3, 4];
        s.push_audio(1000, &body);
        s.push_audio(1020, &body);
        let t0 = Instant::from_millis(10_000);
        s.orphan(t0);
        assert_eq!(s.silence_deadline(), Some(t0.saturating_add_millis(20)));
        assert!(s.fill_silence(t0.saturating_add_millis(100)));
        assert_eq!(s.ring.latest_time(), Some(120));
        // 20 ms of 44.1 kHz stereo 16-bit zeros after the header byte.
        let mut cursor = s.ring.cursor_since(120);
        let msg = s.ring.current_message(&cursor).unwrap();
        assert!(msg.len() > 882 * 4);
        s.ring.advance(&mut cursor, msg.len());
        // A new publisher continues one step after the silence.
        s.set_publisher(Publisher::Peer(3));
        s.push_audio(0, &body);
        assert_eq!(s.ring.latest_time(), Some(140));
    }
}
