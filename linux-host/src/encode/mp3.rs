//! MP3 through LAME (`mp3lame-sys`, which compiles LAME 3.100's source into the binary; LGPL,
//! see THIRD_PARTY_NOTICES).
//!
//! Constant bit rate MPEG-1 layer III at 44.1 kHz (or 32/48 kHz, which FLV flags as 44 kHz and
//! decoders read from the frame headers), joint stereo or mono, no Xing/Info tag. LAME returns
//! bytes in whatever pieces it likes; they are cut at frame boundaries here (the frame header
//! gives each frame's length), so every FLV packet is whole frames — one, of 1152 frames.
//!
//! Delay: LAME's encoder delay (`lame_get_encoder_delay`, 576) plus the 529 frames every MP3
//! decoder's synthesis filter adds (LAME's documentation, "the total delay is encoder delay +
//! 528 + 1"); without a LAME tag, decoders output both before the first real sample.

// The FFI calls are the point of this module; each unsafe block says why it is sound.
#![allow(unsafe_code)]

use std::os::raw::c_int;

use mp3lame_sys as lame;
use zerocast_core::codec::{CodecError, Encoder, Packet};
use zerocast_core::flv::{AudioTagHeader, SoundFormat};

use super::{Codec, EncodeError, Pending};

/// Frames per MPEG-1 layer III frame.
const FRAME_LEN: usize = 1152;
/// The synthesis filter delay of an MP3 decoder, frames.
const DECODER_DELAY: usize = 529;
/// The largest MPEG-1 layer III frame: 320 kbit/s at 32 kHz, padded (1441 bytes).
const MAX_FRAME_BYTES: usize = 1441;
/// MPEG-1 layer III bit rates by index, kbit/s (ISO 11172-3 2.4.2.3).
const BITRATES: [u32; 15] = [
    0, 32, 40, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320,
];
/// MPEG-1 sample rates by index, Hz.
const RATES: [u32; 3] = [44_100, 48_000, 32_000];

/// The length of the MPEG-1 layer III frame whose header starts `bytes`, or `None` if it is
/// not such a header (or not all four bytes are there).
fn frame_len(bytes: &[u8]) -> Option<usize> {
    let &[b0, b1, b2, _] = bytes.get(..4)? else {
        return None;
    };
    // Sync (11 bits), MPEG-1 (11), layer III (01); any protection bit.
    if b0 != 0xFF || b1 & 0xFE != 0xFA {
        return None;
    }
    let kbps = *BITRATES.get(usize::from(b2 >> 4))?;
    let rate = *RATES.get(usize::from(b2 >> 2 & 3))?;
    if kbps == 0 {
        return None;
    }
    Some((144_000 * kbps / rate) as usize + usize::from(b2 >> 1 & 1))
}

/// A LAME encoder.
pub struct Lame {
    flags: *mut lame::lame_global_flags,
    header: AudioTagHeader,
    channels: usize,
    delay: usize,
    /// Samples pushed and not yet given to LAME.
    pending: Pending,
    /// LAME's output not yet cut into frames.
    bytes: Vec<u8>,
    /// Position of the next frame.
    position: i64,
    finishing: bool,
    flushed: bool,
}

impl Lame {
    /// An encoder for `channels` (1 or 2) at `rate` Hz (44100, 48000 or 32000), CBR `kbps`,
    /// LAME quality `quality` (0 best .. 9 fastest).
    pub fn new(rate: u32, channels: u8, kbps: u32, quality: u8) -> Result<Self, EncodeError> {
        let header =
            AudioTagHeader::for_rate(SoundFormat::Mp3, rate, channels).map_err(CodecError::from)?;
        if !BITRATES[1..].contains(&kbps) {
            return Err(EncodeError::UnsupportedBitrate {
                codec: Codec::Mp3,
                kbps,
            });
        }
        // SAFETY: lame_init allocates a new context or returns null.
        let flags = unsafe { lame::lame_init() };
        if flags.is_null() {
            return Err(EncodeError::Library {
                library: "lame",
                call: "lame_init",
                code: 0,
            });
        }
        let mut encoder = Self {
            flags,
            header,
            channels: usize::from(channels),
            delay: 0,
            pending: Pending::new(usize::from(channels), FRAME_LEN),
            bytes: Vec::with_capacity(4 * MAX_FRAME_BYTES + 7200),
            position: 0,
            finishing: false,
            flushed: false,
        };
        // From here on `encoder`'s Drop closes the context, whatever fails.
        let mode = if channels == 1 {
            lame::MPEG_mode::MONO
        } else {
            lame::MPEG_mode::JOINT_STEREO
        };
        // SAFETY: `flags` is a live context; the setters only store their argument.
        let code = unsafe {
            lame::lame_set_in_samplerate(flags, rate as c_int)
                | lame::lame_set_out_samplerate(flags, rate as c_int)
                | lame::lame_set_num_channels(flags, c_int::from(channels))
                | lame::lame_set_mode(flags, mode)
                | lame::lame_set_VBR(flags, lame::vbr_mode::vbr_off)
                | lame::lame_set_brate(flags, kbps as c_int)
                | lame::lame_set_quality(flags, c_int::from(quality))
                | lame::lame_set_bWriteVbrTag(flags, 0)
        };
        if code != 0 {
            return Err(EncodeError::Library {
                library: "lame",
                call: "lame_set_*",
                code: i64::from(code),
            });
        }
        // SAFETY: as above.
        let code = unsafe { lame::lame_init_params(flags) };
        if code < 0 {
            return Err(EncodeError::Library {
                library: "lame",
                call: "lame_init_params",
                code: i64::from(code),
            });
        }
        // SAFETY: as above.
        encoder.delay =
            unsafe { lame::lame_get_encoder_delay(flags) }.max(0) as usize + DECODER_DELAY;
        encoder.position = -(encoder.delay as i64);
        Ok(encoder)
    }

    /// Appends what LAME makes of `frames` frames of `pending` (all of them at the end) to
    /// `bytes`; `None` flushes.
    fn encode(&mut self, frames: Option<usize>) -> Result<(), CodecError> {
        // LAME's worst case: 1.25 × samples + 7200 bytes.
        let samples = frames.unwrap_or(0);
        let room = samples * 5 / 4 + 7200;
        let start = self.bytes.len();
        self.bytes.resize(start + room, 0);
        let out = self.bytes[start..].as_mut_ptr();
        let pcm = self.pending.samples.as_mut_ptr();
        // SAFETY: `pcm` holds at least `samples` frames (the caller checks), `out` has `room`
        // bytes, which is LAME's documented bound for that many frames (and for a flush).
        let written = unsafe {
            match frames {
                None => lame::lame_encode_flush(self.flags, out, room as c_int),
                Some(n) if self.channels == 2 => lame::lame_encode_buffer_interleaved(
                    self.flags,
                    pcm,
                    n as c_int,
                    out,
                    room as c_int,
                ),
                // Mono: LAME reads only the left buffer.
                Some(n) => {
                    lame::lame_encode_buffer(self.flags, pcm, pcm, n as c_int, out, room as c_int)
                }
            }
        };
        self.bytes.truncate(start + written.max(0) as usize);
        if written < 0 {
            return Err(CodecError::EncoderFailed { code: written });
        }
        self.pending.samples.drain(..samples * self.channels);
        Ok(())
    }

    /// The next whole frame's length, once `bytes` holds all of it.
    fn whole_frame(&mut self) -> Option<usize> {
        // Skip anything before a frame header (LAME writes none, but a stream is resynced
        // rather than stuck).
        let skip = (0..self.bytes.len())
            .find(|&i| frame_len(&self.bytes[i..]).is_some() || self.bytes.len() - i < 4)
            .unwrap_or(self.bytes.len());
        if skip > 0 && frame_len(&self.bytes[skip..]).is_some() {
            log::warn!("lame: skipped {skip} bytes before a frame header");
            self.bytes.drain(..skip);
        }
        frame_len(&self.bytes).filter(|&len| len <= self.bytes.len())
    }
}

impl Encoder for Lame {
    fn tag_header(&self) -> AudioTagHeader {
        self.header
    }

    fn frame_len(&self) -> usize {
        FRAME_LEN
    }

    fn delay(&self) -> usize {
        self.delay
    }

    fn max_packet_len(&self) -> usize {
        MAX_FRAME_BYTES
    }

    fn push(&mut self, pcm: &[i16]) -> Result<usize, CodecError> {
        self.pending.push(pcm)
    }

    fn pull(&mut self, out: &mut [u8]) -> Result<Option<Packet>, CodecError> {
        loop {
            if let Some(len) = self.whole_frame() {
                let available = out.len();
                let dst = out.get_mut(..len).ok_or(CodecError::OutputTooSmall {
                    needed: len,
                    available,
                })?;
                dst.copy_from_slice(&self.bytes[..len]);
                self.bytes.drain(..len);
                let position = self.position;
                self.position += FRAME_LEN as i64;
                return Ok(Some(Packet {
                    len,
                    position,
                    frames: FRAME_LEN,
                }));
            }
            let frames = self.pending.samples.len() / self.channels;
            if frames >= FRAME_LEN {
                self.encode(Some(FRAME_LEN))?;
            } else if self.finishing && frames > 0 {
                self.encode(Some(frames))?;
            } else if self.finishing && !self.flushed {
                self.flushed = true;
                self.encode(None)?;
            } else {
                return Ok(None);
            }
        }
    }

    fn finish(&mut self) {
        self.finishing = true;
    }
}

impl Drop for Lame {
    fn drop(&mut self) {
        // SAFETY: the context came from lame_init and is closed once, here.
        unsafe {
            lame::lame_close(self.flags);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frame_lengths_from_headers() {
        // 128 kbit/s, 44.1 kHz, no padding: 417 bytes; padded 418; 48 kHz 384.
        assert_eq!(frame_len(&[0xFF, 0xFB, 0x90, 0x64]), Some(417));
        assert_eq!(frame_len(&[0xFF, 0xFB, 0x92, 0x64]), Some(418));
        assert_eq!(frame_len(&[0xFF, 0xFB, 0x94, 0x64]), Some(384));
        // MPEG-2, layer II, free format, bad rate index, too short: not frames here.
        assert_eq!(frame_len(&[0xFF, 0xF3, 0x90, 0x64]), None);
        assert_eq!(frame_len(&[0xFF, 0xFD, 0x90, 0x64]), None);
        assert_eq!(frame_len(&[0xFF, 0xFB, 0x00, 0x64]), None);
        assert_eq!(frame_len(&[0xFF, 0xFB, 0x9C, 0x64]), None);
        assert_eq!(frame_len(&[0xFF, 0xFB, 0x90]), None);
    }
}
