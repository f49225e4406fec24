//! FLAC "verbatim" frames: 16-bit PCM wrapped losslessly in FLAC framing at the cost of a copy
//! and two CRCs, so a browser can play a PCM stream through Media Source Extensions (FLAC in
//! fragmented MP4 plays in Chrome, Firefox and Safari; see [`crate::mp4`]).
//!
//! Every frame has a fixed block size (the FLAC "fixed-blocksize" strategy, frame numbers in the
//! header), independent channels and one VERBATIM subframe per channel. Apple's decoders want the
//! minimum and maximum block size equal and at most 32768, which [`FlacStream::new`] enforces.
//!
//! Source: RFC 9639 (FLAC) §8.2 STREAMINFO, §9.1 frame header, §9.1.5 coded number, §9.2.5
//! verbatim subframe, §9.1.8 CRC-8 (polynomial 0x07) and §9.3 CRC-16 (polynomial 0x8005).

use core::fmt;

/// Length of the STREAMINFO metadata block's body.
pub const STREAMINFO_LEN: usize = 34;
/// Largest block size [`FlacStream`] accepts (Apple's limit, RFC 9639 §8.2 allows 65535).
pub const MAX_BLOCK_SIZE: u16 = 32_768;
/// Smallest block size of a stream (RFC 9639 §8.2: only the last frame may be shorter than 16).
pub const MIN_BLOCK_SIZE: u16 = 16;
/// Longest frame header: 4 fixed bytes, a 6-byte coded frame number, 2 bytes of block size, 2 of
/// sample rate, CRC-8.
const MAX_HEADER_LEN: usize = 4 + 6 + 2 + 2 + 1;

/// What was wrong with a stream description or a block of PCM.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum FlacError {
    /// FLAC has 1 to 8 channels.
    Channels {
        /// Channels asked for.
        channels: u8,
    },
    /// Sample rates are 1 Hz to 1 048 575 Hz (20 bits).
    SampleRate {
        /// Rate asked for.
        rate: u32,
    },
    /// The block size is outside [`MIN_BLOCK_SIZE`]..=[`MAX_BLOCK_SIZE`].
    BlockSize {
        /// Block size asked for.
        block_size: u16,
    },
    /// The PCM is not whole frames of 16-bit samples, or has more frames than the block size.
    Pcm {
        /// Bytes given.
        len: usize,
    },
    /// The output buffer is shorter than [`FlacStream::max_frame_len`] asks for.
    BufferTooSmall {
        /// Bytes the frame needs.
        needed: usize,
    },
}

impl fmt::Display for FlacError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FlacError::Channels { channels } => write!(f, "FLAC cannot carry {channels} channels"),
            FlacError::SampleRate { rate } => write!(f, "FLAC cannot carry {rate} Hz"),
            FlacError::BlockSize { block_size } => write!(
                f,
                "block size {block_size} is outside {MIN_BLOCK_SIZE}..={MAX_BLOCK_SIZE}"
            ),
            FlacError::Pcm { len } => write!(
                f,
                "{len} bytes of PCM are not whole 16-bit frames within one block"
            ),
            FlacError::BufferTooSmall { needed } => {
                write!(f, "a FLAC frame needs {needed} bytes of buffer")
            }
        }
    }
}

/// One stream of verbatim FLAC frames: 16-bit samples, fixed block size.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct FlacStream {
    rate: u32,
    channels: u8,
    block_size: u16,
}

impl FlacStream {
    /// A stream at `rate` Hz with `channels` channels, `block_size` frames per FLAC frame.
    pub fn new(rate: u32, channels: u8, block_size: u16) -> Result<Self, FlacError> {
        if !(1..=8).contains(&channels) {
            return Err(FlacError::Channels { channels });
        }
        if !(1..(1 << 20)).contains(&rate) {
            return Err(FlacError::SampleRate { rate });
        }
        if !(MIN_BLOCK_SIZE..=MAX_BLOCK_SIZE).contains(&block_size) {
            return Err(FlacError::BlockSize { block_size });
        }
        Ok(Self {
            rate,
            channels,
            block_size,
        })
    }

    /// The block size: PCM frames per FLAC frame.
    pub fn block_size(&self) -> u16 {
        self.block_size
    }

    /// The STREAMINFO block body (RFC 9639 §8.2): block size min = max, frame sizes, total
    /// samples and MD5 unknown (0), as for a live stream.
    pub fn streaminfo(&self) -> [u8; STREAMINFO_LEN] {
        let mut out = [0u8; STREAMINFO_LEN];
        out[0..2].copy_from_slice(&self.block_size.to_be_bytes());
        out[2..4].copy_from_slice(&self.block_size.to_be_bytes());
        // min/max frame size (24 bits each) stay 0: unknown.
        let bits: u64 =
            (u64::from(self.rate) << 44) | (u64::from(self.channels - 1) << 41) | (15u64 << 36); // bits per sample - 1; total samples 0 = unknown
        out[10..18].copy_from_slice(&bits.to_be_bytes());
        // MD5 (16 bytes) stays 0: unknown.
        out
    }

    /// The most bytes one frame takes: size the output buffer of [`Self::emit_frame`] with it.
    pub fn max_frame_len(&self) -> usize {
        MAX_HEADER_LEN + usize::from(self.channels) * (1 + 2 * usize::from(self.block_size)) + 2
    }

    /// Writes frame number `frame_number` (counted from 0, modulo 2^31) holding `pcm` —
    /// interleaved little-endian s16, at most one block; only a stream's last frame may be
    /// shorter — into `out`. Returns the frame's length.
    pub fn emit_frame(
        &self,
        frame_number: u32,
        pcm: &[u8],
        out: &mut [u8],
    ) -> Result<usize, FlacError> {
        let channels = usize::from(self.channels);
        let frame_bytes = 2 * channels;
        let frames = pcm.len() / frame_bytes;
        if pcm.len() % frame_bytes != 0 || frames == 0 || frames > usize::from(self.block_size) {
            return Err(FlacError::Pcm { len: pcm.len() });
        }
        let needed = MAX_HEADER_LEN + channels * (1 + 2 * frames) + 2;
        if out.len() < needed {
            return Err(FlacError::BufferTooSmall { needed });
        }
        let mut n = self.emit_header(frame_number, frames, out);
        for ch in 0..channels {
            // Subframe header: zero pad bit, type 000001 (VERBATIM), no wasted bits.
            out[n] = 0x02;
            n += 1;
            for frame in pcm.chunks_exact(frame_bytes) {
                let at = 2 * ch;
                out[n] = frame[at + 1];
                out[n + 1] = frame[at];
                n += 2;
            }
        }
        // 16-bit samples keep the frame byte-aligned: no padding before the CRC-16.
        let crc = crc16(&out[..n]);
        out[n..n + 2].copy_from_slice(&crc.to_be_bytes());
        Ok(n + 2)
    }

    /// Writes the frame header with its CRC-8 into `out` (long enough); returns its length.
    fn emit_header(&self, frame_number: u32, frames: usize, out: &mut [u8]) -> usize {
        let (rate_code, rate_tail) = rate_code(self.rate);
        // Block size: 0110 = 8-bit (size - 1) after the number, 0111 = 16-bit (§9.1.1).
        let size_minus_1 = (frames - 1) as u16;
        let size_code = if size_minus_1 < 256 { 0x6 } else { 0x7 };
        out[0] = 0xFF;
        out[1] = 0xF8; // sync 0b11111111111110, reserved 0, fixed block size
        out[2] = (size_code << 4) | rate_code;
        // Independent channels (n - 1), 16 bits per sample (100), reserved 0.
        out[3] = ((self.channels - 1) << 4) | (0b100 << 1);
        let mut n = 4 + coded_number(frame_number & 0x7FFF_FFFF, &mut out[4..]);
        if size_code == 0x6 {
            out[n] = size_minus_1 as u8;
            n += 1;
        } else {
            out[n..n + 2].copy_from_slice(&size_minus_1.to_be_bytes());
            n += 2;
        }
        match rate_tail {
            RateTail::None => {}
            RateTail::Khz(k) => {
                out[n] = k;
                n += 1;
            }
            RateTail::Hz(hz) => {
                out[n..n + 2].copy_from_slice(&hz.to_be_bytes());
                n += 2;
            }
        }
        out[n] = crc8(&out[..n]);
        n + 1
    }
}

/// Extra sample-rate bytes after the header's fixed part.
enum RateTail {
    None,
    Khz(u8),
    Hz(u16),
}

/// The 4-bit sample rate code of §9.1.2 and what follows the coded number for it.
fn rate_code(rate: u32) -> (u8, RateTail) {
    let code = match rate {
        88_200 => 0x1,
        176_400 => 0x2,
        192_000 => 0x3,
        8_000 => 0x4,
        16_000 => 0x5,
        22_050 => 0x6,
        24_000 => 0x7,
        32_000 => 0x8,
        44_100 => 0x9,
        48_000 => 0xA,
        96_000 => 0xB,
        _ => {
            return match u16::try_from(rate) {
                _ if rate % 1000 == 0 && rate / 1000 < 256 => {
                    (0xC, RateTail::Khz((rate / 1000) as u8))
                }
                Ok(hz) => (0xD, RateTail::Hz(hz)),
                // From STREAMINFO.
                Err(_) => (0x0, RateTail::None),
            };
        }
    };
    (code, RateTail::None)
}

/// Writes `n` (< 2^31) in FLAC's UTF-8-like coding (§9.1.5) into `out`; returns its length.
fn coded_number(n: u32, out: &mut [u8]) -> usize {
    if n < 0x80 {
        out[0] = n as u8;
        return 1;
    }
    let len = match n {
        0..=0x7FF => 2,
        0x800..=0xFFFF => 3,
        0x1_0000..=0x1F_FFFF => 4,
        0x20_0000..=0x3FF_FFFF => 5,
        _ => 6,
    };
    for (i, byte) in out[1..len].iter_mut().rev().enumerate() {
        *byte = 0x80 | ((n >> (6 * i)) & 0x3F) as u8;
    }
    let lead_mask = 0xFFu8 << (8 - len);
    out[0] = lead_mask | (n >> (6 * (len - 1))) as u8;
    len
}

const fn crc_table<const POLY: u16, const WIDTH: u32>() -> [u16; 256] {
    let mut table = [0u16; 256];
    let top = 1u16 << (WIDTH - 1);
    let mask = if WIDTH == 16 {
        0xFFFF
    } else {
        (1u16 << WIDTH) - 1
    };
    let mut i = 0;
    while i < 256 {
        let mut crc = (i as u16) << (WIDTH - 8);
        let mut bit = 0;
        while bit < 8 {
            crc = if crc & top != 0 {
                (crc << 1) ^ POLY
            } else {
                crc << 1
            };
            bit += 1;
        }
        table[i] = crc & mask;
        i += 1;
    }
    table
}

static CRC8: [u16; 256] = crc_table::<0x07, 8>();
static CRC16: [u16; 256] = crc_table::<0x8005, 16>();

/// CRC-8 of the frame header: polynomial x^8 + x^2 + x + 1, initial 0, no reflection.
fn crc8(bytes: &[u8]) -> u8 {
    bytes
        .iter()
        .fold(0u8, |crc, &b| CRC8[usize::from(crc ^ b)] as u8)
}

/// CRC-16 of the whole frame: polynomial x^16 + x^15 + x^2 + 1, initial 0, no reflection.
fn crc16(bytes: &[u8]) -> u16 {
    bytes.iter().fold(0u16, |crc, &b| {
        (crc << 8) ^ CRC16[usize::from((crc >> 8) as u8 ^ b)]
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crcs_match_the_standard_check_values() {
        // "123456789": CRC-8 (poly 0x07) = 0xF4, CRC-16/UMTS (poly 0x8005, init 0) = 0xFEE8.
        assert_eq!(crc8(b"123456789"), 0xF4);
        assert_eq!(crc16(b"123456789"), 0xFEE8);
    }

    #[test]
    fn coded_numbers_follow_utf8() {
        let mut out = [0u8; 6];
        assert_eq!(coded_number(0x7F, &mut out), 1);
        assert_eq!(out[0], 0x7F);
        assert_eq!(coded_number(0x80, &mut out), 2);
        assert_eq!(&out[..2], &[0xC2, 0x80]);
        assert_eq!(coded_number(0x20AC, &mut out), 3);
        assert_eq!(&out[..3], "€".as_bytes());
        assert_eq!(coded_number(0x7FFF_FFFF, &mut out), 6);
        assert_eq!(out, [0xFD, 0xBF, 0xBF, 0xBF, 0xBF, 0xBF]);
    }

    #[test]
    fn a_stereo_frame_has_header_verbatim_subframes_and_crcs() {
        let s = FlacStream::new(44_100, 2, 882).unwrap();
        let pcm = [1u8, 0, 2, 0, 0xFF, 0xFF, 0, 0x80]; // L 1, R 2, L -1, R -32768
        let mut out = [0u8; 64];
        let n = s.emit_frame(5, &pcm, &mut out).unwrap();
        // header: sync, block size code 6 (8-bit), rate code 9, 2 channels, 16 bit, number 5,
        // size - 1 = 1, CRC-8.
        assert_eq!(
            &out[..7],
            &[0xFF, 0xF8, 0x69, 0x18, 0x05, 0x01, crc8(&out[..6])]
        );
        assert_eq!(&out[7..12], &[0x02, 0x00, 0x01, 0xFF, 0xFF]);
        assert_eq!(&out[12..17], &[0x02, 0x00, 0x02, 0x80, 0x00]);
        assert_eq!(n, 19);
        assert_eq!(
            crc16(&out[..n]),
            0,
            "a frame with its CRC-16 has remainder 0"
        );
        assert!(n <= s.max_frame_len());
    }

    #[test]
    fn streaminfo_fields() {
        let info = FlacStream::new(48_000, 1, 1024).unwrap().streaminfo();
        assert_eq!(&info[..4], &[0x04, 0x00, 0x04, 0x00]);
        // 48000 = 0x0BB80 in 20 bits, channels - 1 = 0, bps - 1 = 15.
        assert_eq!(&info[10..14], &[0x0B, 0xB8, 0x00, 0xF0]);
    }

    #[test]
    fn bad_input_is_refused() {
        assert_eq!(
            FlacStream::new(44_100, 9, 1024),
            Err(FlacError::Channels { channels: 9 })
        );
        assert_eq!(
            FlacStream::new(0, 2, 1024),
            Err(FlacError::SampleRate { rate: 0 })
        );
        assert_eq!(
            FlacStream::new(44_100, 2, 15),
            Err(FlacError::BlockSize { block_size: 15 })
        );
        let s = FlacStream::new(44_100, 2, 16).unwrap();
        let mut out = [0u8; 256];
        assert_eq!(
            s.emit_frame(0, &[0; 3], &mut out),
            Err(FlacError::Pcm { len: 3 })
        );
        assert_eq!(
            s.emit_frame(0, &[], &mut out),
            Err(FlacError::Pcm { len: 0 })
        );
        assert_eq!(
            s.emit_frame(0, &[0; 68], &mut out),
            Err(FlacError::Pcm { len: 68 })
        );
        assert!(matches!(
            s.emit_frame(0, &[0; 64], &mut out[..20]),
            Err(FlacError::BufferTooSmall { .. })
        ));
    }

    #[test]
    fn unusual_rates_go_in_the_header_tail() {
        assert!(matches!(rate_code(11_025), (0xD, RateTail::Hz(11_025))));
        assert!(matches!(rate_code(12_000), (0xC, RateTail::Khz(12))));
        assert!(matches!(rate_code(352_800), (0x0, RateTail::None)));
    }
}
