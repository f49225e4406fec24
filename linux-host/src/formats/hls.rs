//! Audio-only HLS from a stream's AAC rendition: packed-audio segments (ADTS frames after an ID3
//! tag whose PRIV frame carries the first sample's 90 kHz timestamp, RFC 8216 §3.4) of about
//! [`SEGMENT_MS`], kept in memory — at most [`SEGMENTS`] of them, each at most
//! [`MAX_SEGMENT_BYTES`] — and the live playlist over them. No MPEG-TS, so no phantom video
//! track (nginx-rtmp #642), and nothing is written to the SD card.

use std::collections::VecDeque;
use std::fmt::Write;

/// Target segment length. Short segments keep HLS's delay (≈ 3 segments) low.
pub const SEGMENT_MS: u64 = 1000;
/// Complete segments kept (and listed): a client 3 segments behind live finds its next one.
pub const SEGMENTS: usize = 6;
/// A segment is cut early at this size (≈ 8 s of 256 kbit/s), so memory stays bounded whatever
/// the frames.
pub const MAX_SEGMENT_BYTES: usize = 256 * 1024;

/// `com.apple.streaming.transportStreamTimestamp`, the PRIV owner HLS packed audio uses.
const PRIV_OWNER: &[u8] = b"com.apple.streaming.transportStreamTimestamp\0";

/// One complete segment.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Segment {
    /// Media sequence number.
    pub sequence: u64,
    /// Duration in samples.
    pub samples: u64,
    /// The segment's bytes (`audio/aac`).
    pub bytes: Vec<u8>,
    /// The first segment after a codec change: listed after `#EXT-X-DISCONTINUITY`.
    pub discontinuity: bool,
}

/// Where a stream's segment numbering stands, for the segmenter made after a codec change: a
/// player polling the playlist must see the media sequence go on, not start again at 0 (RFC
/// 8216 §6.2.1: a server must not decrease it), and the change marked as a discontinuity.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Numbering {
    next_sequence: u64,
    discontinuity_sequence: u64,
}

/// The segmenter and segment store of one stream.
#[derive(Debug)]
pub struct Hls {
    rate: u32,
    /// Complete segments, oldest first.
    done: VecDeque<Segment>,
    /// The segment being filled: (first sample position, samples, bytes).
    open: Option<(u64, u64, Vec<u8>)>,
    next_sequence: u64,
    /// Discontinuities before the oldest segment listed (`#EXT-X-DISCONTINUITY-SEQUENCE`).
    discontinuity_sequence: u64,
    /// The next segment closed is the first after a codec change.
    discontinuity_next: bool,
}

impl Hls {
    /// A segmenter for AAC at `rate` Hz; `after` is where the stream's numbering stands when an
    /// earlier segmenter (of a publisher of another codec or rate) came before this one.
    pub fn new(rate: u32, after: Option<Numbering>) -> Self {
        Self {
            rate,
            done: VecDeque::with_capacity(SEGMENTS + 1),
            open: None,
            next_sequence: after.map_or(0, |n| n.next_sequence),
            discontinuity_sequence: after.map_or(0, |n| n.discontinuity_sequence),
            discontinuity_next: after.is_some(),
        }
    }

    /// Where the numbering stands, for a segmenter that follows this one.
    pub fn numbering(&self) -> Numbering {
        let listed = self.done.iter().filter(|s| s.discontinuity).count() as u64;
        Numbering {
            next_sequence: self.next_sequence,
            discontinuity_sequence: self.discontinuity_sequence + listed,
        }
    }

    /// Adds one ADTS frame of `samples` samples starting at sample `position`. A frame that is
    /// not contiguous with the open segment (a gap, a new publisher) starts a new segment; the
    /// timestamp in that segment's ID3 tag says where it belongs.
    pub fn push(&mut self, position: u64, samples: u64, adts_frame: &[u8]) {
        let target = SEGMENT_MS * u64::from(self.rate) / 1000;
        if let Some((start, len, bytes)) = &self.open {
            let contiguous = start + len == position;
            if !contiguous || *len >= target || bytes.len() + adts_frame.len() > MAX_SEGMENT_BYTES {
                self.close();
            }
        }
        let (_, len, bytes) = self.open.get_or_insert_with(|| {
            let mut bytes = Vec::with_capacity(32 * 1024);
            id3_timestamp(position * 90_000 / u64::from(self.rate.max(1)), &mut bytes);
            (position, 0, bytes)
        });
        *len += samples;
        bytes.extend_from_slice(adts_frame);
    }

    fn close(&mut self) {
        if let Some((_, samples, bytes)) = self.open.take() {
            if self.done.len() == SEGMENTS {
                let dropped = self.done.pop_front();
                if dropped.is_some_and(|s| s.discontinuity) {
                    self.discontinuity_sequence += 1;
                }
            }
            self.done.push_back(Segment {
                sequence: self.next_sequence,
                samples,
                bytes,
                discontinuity: std::mem::take(&mut self.discontinuity_next),
            });
            self.next_sequence += 1;
        }
    }

    /// A complete segment by its sequence number, while it is kept.
    pub fn segment(&self, sequence: u64) -> Option<&Segment> {
        self.done.iter().find(|s| s.sequence == sequence)
    }

    /// The live playlist, segment URLs relative to `/APP/NAME.m3u8` (`NAME/SEQ.aac`), each
    /// followed by `query` (`?token=…`, or empty); `None` until the first segment is complete.
    pub fn playlist(&self, name: &str, query: &str) -> Option<String> {
        let first = self.done.front()?;
        let seconds = |s: &Segment| s.samples as f64 / f64::from(self.rate);
        let target = self
            .done
            .iter()
            .map(|s| seconds(s).round() as u64)
            .max()
            .unwrap_or(1)
            .max(1);
        let mut out = format!(
            "#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-TARGETDURATION:{target}\n#EXT-X-MEDIA-SEQUENCE:{}\n",
            first.sequence
        );
        if self.discontinuity_sequence > 0 {
            let _ = writeln!(
                out,
                "#EXT-X-DISCONTINUITY-SEQUENCE:{}",
                self.discontinuity_sequence
            );
        }
        for s in &self.done {
            if s.discontinuity {
                out.push_str("#EXT-X-DISCONTINUITY\n");
            }
            let _ = write!(
                out,
                "#EXTINF:{:.3},\n{name}/{}.aac{query}\n",
                seconds(s),
                s.sequence
            );
        }
        Some(out)
    }
}

/// Writes an ID3v2.4 tag with one PRIV frame holding the 33-bit `pts` (HLS spec, RFC 8216
/// §3.4: an 8-byte big-endian number whose upper 31 bits are zero).
fn id3_timestamp(pts: u64, out: &mut Vec<u8>) {
    let frame_len = PRIV_OWNER.len() + 8;
    let tag_len = 10 + frame_len;
    out.extend_from_slice(b"ID3\x04\x00\x00");
    out.extend_from_slice(&syncsafe(tag_len as u32));
    out.extend_from_slice(b"PRIV");
    out.extend_from_slice(&syncsafe(frame_len as u32));
    out.extend_from_slice(&[0, 0]);
    out.extend_from_slice(PRIV_OWNER);
    out.extend_from_slice(&(pts & ((1 << 33) - 1)).to_be_bytes());
}

/// A 28-bit size as four 7-bit bytes (ID3v2 §6.2).
fn syncsafe(n: u32) -> [u8; 4] {
    [
        (n >> 21) as u8 & 0x7F,
        (n >> 14) as u8 & 0x7F,
        (n >> 7) as u8 & 0x7F,
        n as u8 & 0x7F,
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    const RATE: u32 = 44_100;

    fn filled(frames: u64) -> Hls {
        let mut hls = Hls::new(RATE, None);
        for i in 0..frames {
            hls.push(i * 1024, 1024, &[0xFF, 0xF1, i as u8]);
        }
        hls
    }

    #[test]
    fn segments_are_about_a_second_and_start_with_their_timestamp() {
        let hls = filled(44); // 44 frames: one segment of 44 × 1024 ≥ 1 s would need 44 (43.07)
        assert!(
            hls.playlist("audio", "").is_none(),
            "the open segment is not listed"
        );
        let hls = filled(45);
        let first = hls.segment(0).unwrap();
        assert_eq!(first.samples, 44 * 1024);
        assert_eq!(&first.bytes[..3], b"ID3");
        assert_eq!(&first.bytes[20..20 + PRIV_OWNER.len()], PRIV_OWNER);
        assert_eq!(first.bytes.len(), 10 + 10 + PRIV_OWNER.len() + 8 + 44 * 3);
        let hls = filled(3 * 44 + 1);
        let second = hls.segment(1).unwrap();
        let ts = &second.bytes[20 + PRIV_OWNER.len()..20 + PRIV_OWNER.len() + 8];
        assert_eq!(
            u64::from_be_bytes(ts.try_into().unwrap()),
            44 * 1024 * 90_000 / 44_100
        );
    }

    #[test]
    fn store_is_bounded_and_playlist_slides() {
        let hls = filled(44 * 20 + 1);
        assert!(hls.segment(13).is_none());
        assert!(hls.segment(14).is_some() && hls.segment(19).is_some());
        let playlist = hls.playlist("audio", "").unwrap();
        assert!(playlist.starts_with("#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-TARGETDURATION:1\n"));
        assert!(playlist.contains("#EXT-X-MEDIA-SEQUENCE:14\n"));
        assert!(playlist.contains("#EXTINF:1.022,\naudio/14.aac\n"));
        assert_eq!(playlist.matches("#EXTINF").count(), SEGMENTS);
        let keyed = hls.playlist("audio", "?token=t").unwrap();
        assert!(keyed.contains("#EXTINF:1.022,\naudio/14.aac?token=t\n"));
        assert_eq!(keyed.matches(".aac?token=t\n").count(), SEGMENTS);
    }

    /// After a codec change the numbering goes on, the change is marked, and the mark is
    /// counted in the discontinuity sequence once it slides out of the playlist.
    #[test]
    fn a_successor_goes_on_numbering_with_a_discontinuity() {
        let old = filled(44 * 3 + 1);
        let mut hls = Hls::new(48_000, Some(old.numbering()));
        let frames = |hls: &mut Hls, range: std::ops::Range<u64>| {
            for i in range {
                hls.push(i * 1024, 1024, &[0xFF, 0xF1, i as u8]);
            }
        };
        frames(&mut hls, 0..48);
        let playlist = hls.playlist("audio", "").unwrap();
        assert!(playlist.contains("#EXT-X-MEDIA-SEQUENCE:3\n"), "{playlist}");
        assert!(!playlist.contains("DISCONTINUITY-SEQUENCE"), "{playlist}");
        assert!(
            playlist.contains("#EXT-X-DISCONTINUITY\n#EXTINF:1.003,\naudio/3.aac\n"),
            "{playlist}"
        );
        frames(&mut hls, 48..48 * 10);
        let playlist = hls.playlist("audio", "").unwrap();
        assert!(
            playlist.contains("#EXT-X-DISCONTINUITY-SEQUENCE:1\n"),
            "{playlist}"
        );
        assert!(!playlist.contains("#EXT-X-DISCONTINUITY\n"), "{playlist}");
        // A third segmenter after this one counts both.
        let third = Hls::new(RATE, Some(hls.numbering()));
        assert_eq!(third.numbering().discontinuity_sequence, 1);
        assert_eq!(
            third.numbering().next_sequence,
            hls.numbering().next_sequence
        );
    }

    #[test]
    fn a_gap_or_a_huge_frame_cuts_the_segment() {
        let mut hls = Hls::new(RATE, None);
        hls.push(0, 1024, &[1]);
        hls.push(5 * 1024, 1024, &[2]); // not contiguous
        assert_eq!(hls.segment(0).unwrap().samples, 1024);
        hls.push(6 * 1024, 1024, &vec![3; MAX_SEGMENT_BYTES]);
        assert_eq!(hls.segment(1).unwrap().samples, 1024);
    }
}
