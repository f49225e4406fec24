//! Reading the FLV files rtmpdump writes: the RTMP messages as received, with their timestamps.
//!
//! Layout (FLV spec v10.1, annex E.2–E.4): a header `"FLV"`, version, flags, a 32-bit header size
//! (9), then `PreviousTagSize0` (4 bytes) and tags. A tag header is 11 bytes: type (8 audio,
//! 9 video, 18 script data), 24-bit data size, 24-bit timestamp, 8-bit extended timestamp (the
//! upper 8 bits of the 32-bit millisecond time), 24-bit stream id (0); then the data and a 32-bit
//! size of the tag just ended. A player stopped by a signal may leave the last tag cut short: it
//! is dropped.

use std::fmt;
use std::path::Path;

use super::HarnessError;

/// FLV tag type of audio.
pub const TAG_AUDIO: u8 = 8;
/// FLV tag type of script data (onMetaData).
pub const TAG_SCRIPT: u8 = 18;

/// One tag.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Tag {
    /// Tag type: [`TAG_AUDIO`], 9 (video) or [`TAG_SCRIPT`].
    pub kind: u8,
    /// Milliseconds, with the extended byte as the top 8 bits.
    pub timestamp: u32,
    /// The tag data: for audio the FLV audio tag body (one header byte, then the codec data).
    pub data: Vec<u8>,
}

/// Why bytes are not an FLV file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FlvError {
    /// No `FLV` signature, or a header size below 9.
    NotFlv,
}

impl fmt::Display for FlvError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FlvError::NotFlv => write!(f, "not an FLV file"),
        }
    }
}

fn be(bytes: &[u8]) -> u32 {
    bytes.iter().fold(0, |acc, b| (acc << 8) | u32::from(*b))
}

/// Parses every complete tag of an FLV file.
pub fn parse(bytes: &[u8]) -> Result<Vec<Tag>, FlvError> {
    if bytes.get(0..3) != Some(b"FLV") {
        return Err(FlvError::NotFlv);
    }
    let header = bytes.get(5..9).map(be).ok_or(FlvError::NotFlv)? as usize;
    if header < 9 {
        return Err(FlvError::NotFlv);
    }
    // PreviousTagSize0 follows the header.
    let mut at = header + 4;
    let mut tags = Vec::new();
    while let Some(head) = bytes.get(at..at + 11) {
        let size = be(&head[1..4]) as usize;
        let timestamp = be(&head[4..7]) | (u32::from(head[7]) << 24);
        let Some(data) = bytes.get(at + 11..at + 11 + size) else {
            break;
        };
        tags.push(Tag {
            kind: head[0],
            timestamp,
            data: data.to_vec(),
        });
        at += 11 + size + 4;
    }
    Ok(tags)
}

/// Reads and parses an FLV file.
pub fn read(path: &Path) -> Result<Vec<Tag>, HarnessError> {
    let bytes =
        std::fs::read(path).map_err(|e| HarnessError::io(format!("read {}", path.display()), e))?;
    parse(&bytes).map_err(|e| HarnessError::Failed {
        what: path.display().to_string(),
        detail: format!("{e} ({} bytes)", bytes.len()),
    })
}

/// The audio tags' timestamps.
pub fn audio_timestamps(tags: &[Tag]) -> Vec<u32> {
    tags.iter()
        .filter(|t| t.kind == TAG_AUDIO)
        .map(|t| t.timestamp)
        .collect()
}

/// Checks that timestamps never go back and never step by more than `max_step` ms; returns the
/// largest step.
pub fn check_timestamps(timestamps: &[u32], max_step: u32) -> Result<u32, HarnessError> {
    let mut largest = 0;
    for (i, pair) in timestamps.windows(2).enumerate() {
        let step = pair[1]
            .checked_sub(pair[0])
            .ok_or_else(|| HarnessError::Failed {
                what: "audio timestamps".to_owned(),
                detail: format!(
                    "message {} goes back: {} ms after {} ms",
                    i + 1,
                    pair[1],
                    pair[0]
                ),
            })?;
        if step > max_step {
            return Err(HarnessError::Failed {
                what: "audio timestamps".to_owned(),
                detail: format!(
                    "message {} jumps {step} ms ({} → {}), more than {max_step} ms",
                    i + 1,
                    pair[0],
                    pair[1]
                ),
            });
        }
        largest = largest.max(step);
    }
    Ok(largest)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tag(kind: u8, timestamp: u32, data: &[u8]) -> Vec<u8> {
        let size = data.len() as u32;
        let mut out = vec![kind];
        out.extend_from_slice(&size.to_be_bytes()[1..]);
        out.extend_from_slice(&timestamp.to_be_bytes()[1..]);
        out.push((timestamp >> 24) as u8);
        out.extend_from_slice(&[0, 0, 0]);
        out.extend_from_slice(data);
        out.extend_from_slice(&(11 + size).to_be_bytes());
        out
    }

    #[test]
    fn parses_tags_with_extended_timestamps_and_drops_a_cut_one() {
        let mut file = b"FLV\x01\x04\x00\x00\x00\x09\x00\x00\x00\x00".to_vec();
        file.extend(tag(18, 0, b"meta"));
        file.extend(tag(8, 0x0123_4567, &[0x3F, 1, 2]));
        file.extend(tag(8, 20, &[0x3F]));
        let cut = tag(8, 40, &[0x3F, 9, 9, 9]);
        file.extend_from_slice(&cut[..cut.len() - 6]);
        let tags = parse(&file).unwrap();
        assert_eq!(tags.len(), 3);
        assert_eq!(tags[0].kind, TAG_SCRIPT);
        assert_eq!(tags[1].timestamp, 0x0123_4567);
        assert_eq!(tags[1].data, vec![0x3F, 1, 2]);
        assert_eq!(audio_timestamps(&tags), vec![0x0123_4567, 20]);
        assert_eq!(parse(b"FLX\x01"), Err(FlvError::NotFlv));
    }

    #[test]
    fn timestamps_must_rise_by_bounded_steps() {
        assert_eq!(check_timestamps(&[0, 20, 20, 60], 40).unwrap(), 40);
        assert!(check_timestamps(&[0, 20, 19], 40).is_err());
        assert!(check_timestamps(&[0, 20, 61], 40).is_err());
    }
}
