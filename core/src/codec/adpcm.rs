//! SWF ADPCM (SoundFormat 1): the IMA-derived ADPCM of Flash, ffmpeg's `adpcm_swf`.
//!
//! Packet layout (SWF File Format Specification v10, "ADPCM compression"; ffmpeg
//! `libavcodec/adpcm.c` `adpcm_swf_decode`), a big-endian bit stream:
//!
//! ```text
//! AdpcmCodeSize  2 bits     code size - 2 (0..3 = 2..5 bits per code)
//! then blocks of up to 4096 frames, each:
//!   per channel: InitialSample 16 bits (signed; it is also the block's first output sample)
//!                InitialIndex   6 bits (step table index)
//!   4095 (or, in the last block, fewer) frames of codes, one code per channel per frame
//! zero bits up to the next byte
//! ```
//!
//! A code is a sign bit and `bits - 1` magnitude bits. Decoding one: `diff` = the step (from the
//! 89-entry IMA step table) for each magnitude bit set, halving the step after each bit, plus the
//! step left after the last halving; add or subtract `diff`, clamp to `i16`; move the step index
//! by the code size's index table and clamp it to 0..=88. The encoder runs the same arithmetic,
//! so its predictor is exactly what a decoder outputs.
//!
//! Two details a decoder imposes:
//! - The 6-bit InitialIndex cannot say 64..=88, so at each block start the index is clamped to 63
//!   before it is written and the encoder continues from the clamped value (ffmpeg's adpcmenc.c
//!   does the same: "clip step so it fits 6 bits").
//! - ffmpeg counts samples from the packet size (`get_nb_samples` in adpcm.c): a last partial block
//!   followed by padding of at least one frame of codes decodes one extra frame. Frame counts for
//!   which that happens are refused ([`AdpcmSwf::fit_frames`] gives the nearest good one); whole
//!   blocks of 4096 frames are always exact, and so is any count for 4- and 5-bit stereo.

use super::{channels, output, whole_frames, BlockEncoder, CodecError};
use crate::flv::{AudioTagHeader, SoundFormat};

/// Frames per block: the initial sample plus 4095 codes.
const BLOCK_FRAMES: usize = 4096;

/// Bits of a block header per channel: 16-bit sample + 6-bit step index.
const BLOCK_HEADER_BITS: usize = 22;

/// Largest step index a block header can carry (6 bits).
const MAX_HEADER_INDEX: u8 = 63;

/// The IMA ADPCM step table (IMA Digital Audio Focus and Technical Working Groups, "Recommended
/// Practices for Enhancing Digital Audio Compatibility in Multimedia Systems", 1992).
const STEPS: [u16; 89] = [
    7, 8, 9, 10, 11, 12, 13, 14, 16, 17, 19, 21, 23, 25, 28, 31, 34, 37, 41, 45, 50, 55, 60, 66,
    73, 80, 88, 97, 107, 118, 130, 143, 157, 173, 190, 209, 230, 253, 279, 307, 337, 371, 408, 449,
    494, 544, 598, 658, 724, 796, 876, 963, 1060, 1166, 1282, 1411, 1552, 1707, 1878, 2066, 2272,
    2499, 2749, 3024, 3327, 3660, 4026, 4428, 4871, 5358, 5894, 6484, 7132, 7845, 8630, 9493,
    10442, 11487, 12635, 13899, 15289, 16818, 18500, 20350, 22385, 24623, 27086, 29794, 32767,
];

/// Step index changes by code magnitude, one row per code size 2..=5 (SWF spec, ADPCM; the same
/// values as ffmpeg's `swf_index_tables`); a row has 2^(bits - 1) entries, the rest is unused.
const INDEX_CHANGES: [[i8; 16]; 4] = [
    [-1, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0],
    [-1, -1, 2, 4, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0],
    [-1, -1, -1, -1, 2, 4, 6, 8, 0, 0, 0, 0, 0, 0, 0, 0],
    [-1, -1, -1, -1, -1, -1, -1, -1, 1, 2, 4, 6, 8, 10, 13, 16],
];

/// [`STEPS`] padded to 128 entries, so that an index below 128 needs no bounds check; the padding
/// is never used.
const STEPS_128: [u16; 128] = {
    let mut table = [0; 128];
    let mut i = 0;
    while i < STEPS.len() {
        table[i] = STEPS[i];
        i += 1;
    }
    table
};

/// The transition table of code size `bits`: entry `index << (bits - 1) | magnitude` is twice
/// the step index a decoder moves to from `index` on a code of that magnitude (the index is
/// moved and clamped in one load). Twice the index, so that the next row,
/// `entry << (bits - 2) | magnitude`, needs one shift; and as a `u8`, that row is provably
/// within the table's 128 rows (those past 88 are never used), so the lookup needs no bounds
/// check.
const fn transitions<const LEN: usize>(bits: u32) -> [u8; LEN] {
    let mut table = [0; LEN];
    let width = 1 << (bits - 1);
    let mut i = 0;
    while i < LEN {
        let change = INDEX_CHANGES[bits as usize - 2][i % width];
        let next = (i / width) as i32 + change as i32;
        let next = if next < 0 {
            0
        } else if next > 88 {
            88
        } else {
            next
        };
        table[i] = 2 * next as u8;
        i += 1;
    }
    table
}

static TRANSITIONS_2: [u8; 128 << 1] = transitions(2);
static TRANSITIONS_3: [u8; 128 << 2] = transitions(3);
static TRANSITIONS_4: [u8; 128 << 3] = transitions(4);
static TRANSITIONS_5: [u8; 128 << 4] = transitions(5);

/// One channel's predictor state, shared in meaning with the decoder's.
#[derive(Clone, Copy, Debug, Default)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
struct Channel {
    predictor: i16,
    /// Always within 0..=88.
    index: u8,
}

/// A [`Channel`] as the inner loop of code size `BITS` keeps it.
#[derive(Clone, Copy)]
struct Lane<const BITS: u32> {
    predictor: i32,
    /// Twice the step index, as the transition table has it.
    twice_index: u8,
    step: u32,
}

impl<const BITS: u32> Lane<BITS> {
    fn new(channel: Channel) -> Self {
        let index = channel.index & 127;
        Self {
            predictor: i32::from(channel.predictor),
            twice_index: 2 * index,
            step: u32::from(STEPS_128[usize::from(index)]),
        }
    }

    fn channel(self) -> Channel {
        Channel {
            // Both stay in range: the predictor is clamped to i16, the index comes from a table.
            predictor: self.predictor as i16,
            index: self.twice_index / 2,
        }
    }

    /// Quantizes `sample` to one code of `BITS` bits (sign + magnitude) by successive
    /// approximation, as the IMA reference encoder does, and updates the state the way a decoder
    /// will when it reads the code. `BITS` is a constant, so the magnitude bits are written out
    /// one by one (no loop).
    #[inline(always)]
    fn encode(&mut self, sample: i16, transitions: &[u8]) -> u32 {
        let step = self.step;
        let diff = i32::from(sample) - self.predictor;
        // 0 or -1 (all ones).
        let sign = diff >> 31;
        let start = diff.unsigned_abs();
        let mut rest = start;
        let mut magnitude = 0u32;
        // No branch in the machine code: ARM runs this as conditional instructions, x86 as
        // conditional moves (a branch would mispredict on audio; checked with rustc 1.95).
        let mut take = |bit: u32| {
            let step = step >> (BITS - 2 - bit);
            if rest >= step {
                magnitude |= 1 << bit;
                rest -= step;
            }
        };
        if BITS >= 5 {
            take(3);
        }
        if BITS >= 4 {
            take(2);
        }
        if BITS >= 3 {
            take(1);
        }
        take(0);
        // What was taken, plus half of the last step: the decoder centres the quantization
        // interval. At most 2 * 32767.
        let delta = (start - rest + (step >> (BITS - 1))) as i32;
        let predicted = self.predictor + ((delta ^ sign) - sign);
        self.predictor = predicted.clamp(i32::from(i16::MIN), i32::from(i16::MAX));
        let row = usize::from(self.twice_index) << (BITS - 2) | magnitude as usize;
        self.twice_index = transitions.get(row).copied().unwrap_or(self.twice_index);
        self.step = u32::from(STEPS_128[usize::from(self.twice_index / 2)]);
        (sign as u32 & 1) << (BITS - 1) | magnitude
    }
}

/// Encodes the code frames of one block (`samples`, interleaved, whole frames) with `BITS`-bit
/// codes for `CHANNELS` channels. Codes are gathered 32 / `BITS` at a time (an even number, so
/// a group is whole stereo frames) into one word before they go to the writer. The channels'
/// state lives in locals meanwhile, so it can stay in registers.
fn encode_codes<const BITS: u32, const CHANNELS: usize>(
    state: &mut [Channel; 2],
    samples: &[i16],
    writer: &mut BitWriter,
) {
    let transitions: &[u8] = match BITS {
        2 => &TRANSITIONS_2,
        3 => &TRANSITIONS_3,
        4 => &TRANSITIONS_4,
        _ => &TRANSITIONS_5,
    };
    let [mut left, mut right] = state.map(Lane::<BITS>::new);
    for group in samples.chunks((32 / BITS) as usize) {
        let mut word = 0u32;
        if CHANNELS == 1 {
            for &sample in group {
                word = word << BITS | left.encode(sample, transitions);
            }
        } else {
            for frame in group.chunks_exact(2) {
                if let [l, r] = *frame {
                    word = word << BITS | left.encode(l, transitions);
                    word = word << BITS | right.encode(r, transitions);
                }
            }
        }
        writer.put(BITS * group.len() as u32, word);
    }
    *state = [left.channel(), right.channel()];
}

/// Big-endian bit writer over a buffer already checked to be large enough: bits gather at the
/// top of a 32-bit accumulator and go out a word at a time (no 64-bit shifts, which cost several
/// instructions each on a 32-bit CPU).
struct BitWriter<'a> {
    /// The part of the buffer not written yet.
    out: &'a mut [u8],
    len: usize,
    /// Bits not written yet, in the top `pending` bits.
    acc: u32,
    /// Always below 32.
    pending: u32,
}

impl<'a> BitWriter<'a> {
    fn new(out: &'a mut [u8]) -> Self {
        Self {
            len: out.len(),
            out,
            acc: 0,
            pending: 0,
        }
    }

    /// Appends `value`, which must be below `1 << n`, as `n` (1 to 32) bits.
    #[inline(always)]
    fn put(&mut self, n: u32, value: u32) {
        let free = 32 - self.pending;
        if n < free {
            self.acc |= value << (free - n);
            self.pending += n;
        } else {
            let spill = n - free;
            let word = (self.acc | value >> spill).to_be_bytes();
            // `encode` sized the buffer for every bit, so the four bytes are there.
            if let Some((head, tail)) = core::mem::take(&mut self.out).split_first_chunk_mut() {
                *head = word;
                self.out = tail;
            }
            self.pending = spill;
            // The `spill` bits that did not fit, at the top; none when `spill` is 0.
            self.acc = value.checked_shl(32 - spill).unwrap_or(0);
        }
    }

    /// Writes the bits left, padding the last byte with zero bits; returns the bytes written.
    fn finish(self) -> usize {
        let bytes = self.pending.div_ceil(8) as usize;
        for (dst, byte) in self.out.iter_mut().zip(self.acc.to_be_bytes()).take(bytes) {
            *dst = byte;
        }
        self.len - self.out.len() + bytes.min(self.out.len())
    }
}

/// The SWF ADPCM encoder: mono or stereo, 2 to 5 bits per code. Not `Copy`: it carries the
/// predictor state from one packet to the next, as a decoder does.
#[derive(Clone, Debug)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct AdpcmSwf {
    header: AudioTagHeader,
    bits: u8,
    channels: [Channel; 2],
}

impl AdpcmSwf {
    /// An encoder for `channels` (1 or 2) channels at `sample_rate` (5512, 11025, 22050 or
    /// 44100 Hz) with `bits` (2..=5) bits per code. 4 bits is what Flash and ffmpeg's encoder
    /// write; every decoder reads all four sizes.
    pub fn new(sample_rate: u32, channels: u8, bits: u8) -> Result<Self, CodecError> {
        if !(2..=5).contains(&bits) {
            return Err(CodecError::UnsupportedBits { bits });
        }
        Ok(Self {
            header: AudioTagHeader::for_rate(SoundFormat::Adpcm, sample_rate, channels)?,
            bits,
            channels: [Channel::default(); 2],
        })
    }

    fn channel_count(&self) -> usize {
        usize::from(channels(self.header))
    }

    /// Bytes a packet of `frames` frames takes.
    fn encoded_len(&self, frames: usize) -> usize {
        let channels = self.channel_count();
        let blocks = frames.div_ceil(BLOCK_FRAMES);
        // Every frame but the first of each block is a frame of codes.
        let code_frames = frames - blocks;
        let bits = 2usize
            .saturating_add(blocks.saturating_mul(BLOCK_HEADER_BITS * channels))
            .saturating_add(code_frames.saturating_mul(usize::from(self.bits) * channels));
        bits.div_ceil(8)
    }

    /// Frames ffmpeg's decoder takes a packet of `len` bytes to hold: its `get_nb_samples` for
    /// `AV_CODEC_ID_ADPCM_SWF` (libavcodec/adpcm.c), which counts trailing padding as codes.
    fn decoded_frames(&self, len: usize) -> usize {
        let channels = self.channel_count();
        let header = BLOCK_HEADER_BITS * channels;
        let frame = usize::from(self.bits) * channels;
        let block = header + frame * (BLOCK_FRAMES - 1);
        let bits = len.saturating_mul(8).saturating_sub(2);
        let rest = bits % block;
        let partial = if rest >= header {
            1 + (rest - header) / frame
        } else {
            0
        };
        bits / block * BLOCK_FRAMES + partial
    }

    /// The largest frame count not above `frames` whose packet decodes to exactly that many
    /// frames. A whole number of 4096-frame blocks always does, and so does every count for 4-
    /// and 5-bit stereo; otherwise the count depends on how many padding bits the last byte has.
    /// For example mono 4-bit needs an odd count (1023, 1025) unless it is a multiple of 4096.
    pub fn fit_frames(&self, frames: usize) -> usize {
        // The padding repeats with the frame count modulo 8 / gcd(frame bits, 8), and a block
        // boundary is always exact, so one of any 8 consecutive counts fits.
        (frames.saturating_sub(7)..=frames)
            .rev()
            .find(|&f| self.decoded_frames(self.encoded_len(f)) == f)
            .unwrap_or(0)
    }
}

impl BlockEncoder for AdpcmSwf {
    fn tag_header(&self) -> AudioTagHeader {
        self.header
    }

    fn encode(&mut self, pcm: &[i16], out: &mut [u8]) -> Result<usize, CodecError> {
        let frames = whole_frames(self.header, pcm)?;
        let fit = self.fit_frames(frames);
        if fit != frames {
            return Err(CodecError::InexactFrameCount { frames, fit });
        }
        let out = output(out, self.encoded_len(frames))?;
        let channels = self.channel_count();
        let codes = match (self.bits, channels) {
            (2, 1) => encode_codes::<2, 1>,
            (2, _) => encode_codes::<2, 2>,
            (3, 1) => encode_codes::<3, 1>,
            (3, _) => encode_codes::<3, 2>,
            (4, 1) => encode_codes::<4, 1>,
            (4, _) => encode_codes::<4, 2>,
            (5, 1) => encode_codes::<5, 1>,
            _ => encode_codes::<5, 2>,
        };
        let mut writer = BitWriter::new(out);
        writer.put(2, u32::from(self.bits - 2));
        for block in pcm.chunks(BLOCK_FRAMES * channels) {
            let (first, rest) = block.split_at(channels.min(block.len()));
            for (state, &sample) in self.channels.iter_mut().zip(first) {
                state.predictor = sample;
                state.index = state.index.min(MAX_HEADER_INDEX);
                writer.put(16, u32::from(sample as u16));
                writer.put(6, u32::from(state.index));
            }
            codes(&mut self.channels, rest, &mut writer);
        }
        Ok(writer.finish())
    }

    fn max_encoded_len(&self, frames: usize) -> usize {
        self.encoded_len(frames)
    }

    fn fit_frames(&self, frames: usize) -> usize {
        AdpcmSwf::fit_frames(self, frames)
    }
}

#[cfg(test)]
mod tests {
    extern crate std;
    use super::*;
    use std::{format, vec, vec::Vec};

    /// Reads `n` bits at bit offset `at`, big-endian.
    fn bits_at(buf: &[u8], at: usize, n: usize) -> u32 {
        (at..at + n).fold(0, |v, i| {
            (v << 1) | u32::from(buf[i / 8] >> (7 - i % 8) & 1)
        })
    }

    // The index tables as the SWF spec gives them, for the reference.
    const INDEX_2: [i8; 2] = [-1, 2];
    const INDEX_3: [i8; 4] = [-1, -1, 2, 4];
    const INDEX_4: [i8; 8] = [-1, -1, -1, -1, 2, 4, 6, 8];
    const INDEX_5: [i8; 16] = [-1, -1, -1, -1, -1, -1, -1, -1, 1, 2, 4, 6, 8, 10, 13, 16];

    /// The encoder as first written, kept as the reference the fast one must match byte for
    /// byte: one code at a time by a loop over the magnitude bits, written out one bit at a time.
    struct Reference {
        bits: u8,
        channels: usize,
        /// Predictor and step index per channel.
        state: [(i16, u8); 2],
    }

    impl Reference {
        fn new(bits: u8, channels: usize) -> Self {
            Self {
                bits,
                channels,
                state: [(0, 0); 2],
            }
        }

        fn code(&mut self, channel: usize, sample: i16) -> u8 {
            let table: &[i8] = match self.bits {
                2 => &INDEX_2,
                3 => &INDEX_3,
                4 => &INDEX_4,
                _ => &INDEX_5,
            };
            let (predictor, index) = &mut self.state[channel];
            let mut step = i32::from(STEPS[usize::from(*index)]);
            let diff = i32::from(sample) - i32::from(*predictor);
            let (mut rest, mut magnitude, mut delta) = (diff.abs(), 0u8, 0i32);
            for bit in (0..self.bits - 1).rev() {
                if rest >= step {
                    magnitude |= 1 << bit;
                    rest -= step;
                    delta += step;
                }
                step >>= 1;
            }
            delta += step;
            let signed = if diff < 0 { -delta } else { delta };
            *predictor = (i32::from(*predictor) + signed).clamp(-32768, 32767) as i16;
            *index =
                (i32::from(*index) + i32::from(table[usize::from(magnitude)])).clamp(0, 88) as u8;
            (u8::from(diff < 0) << (self.bits - 1)) | magnitude
        }

        fn encode(&mut self, pcm: &[i16]) -> Vec<u8> {
            let mut stream: Vec<bool> = Vec::new();
            let mut put =
                |n: u8, value: u16| stream.extend((0..n).rev().map(|i| value >> i & 1 == 1));
            put(2, u16::from(self.bits - 2));
            for block in pcm.chunks(BLOCK_FRAMES * self.channels) {
                for (i, &sample) in block.iter().enumerate() {
                    let channel = i % self.channels;
                    if i < self.channels {
                        let (predictor, index) = &mut self.state[channel];
                        *predictor = sample;
                        *index = (*index).min(MAX_HEADER_INDEX);
                        put(16, sample as u16);
                        put(6, u16::from(*index));
                    } else {
                        let code = self.code(channel, sample);
                        put(self.bits, u16::from(code));
                    }
                }
            }
            stream
                .chunks(8)
                .map(|byte| (0..8).fold(0u8, |b, i| b << 1 | u8::from(byte.get(i) == Some(&true))))
                .collect()
        }
    }

    /// `len` samples of test signal `kind`: full-scale noise, a clipping square wave with
    /// random flips, a sine under an envelope from silence to full scale (the step index climbs
    /// and falls), and a quiet random walk with loud bursts.
    fn signal(kind: usize, len: usize, seed: u32) -> Vec<i16> {
        let mut x = seed | 1;
        let mut rand = move || {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            x
        };
        let mut walk = 0i32;
        (0..len)
            .map(|i| match kind {
                0 => rand() as i16,
                1 => match (i / 3 + (rand() % 5 == 0) as usize) % 2 {
                    0 => i16::MAX,
                    _ => i16::MIN,
                },
                2 => {
                    let envelope = (i % 20_000) as f64 / 20_000.0;
                    let tone = (i as f64 * 0.07).sin() + 0.1 * f64::from(rand() as i16) / 32768.0;
                    (tone * envelope * 36_000.0).clamp(-32768.0, 32767.0) as i16
                }
                _ => {
                    let burst: u32 = if i % 3000 < 40 { 20_000 } else { 40 };
                    walk = (walk + (rand() % (2 * burst + 1)) as i32 - burst as i32)
                        .clamp(-32768, 32767);
                    walk as i16
                }
            })
            .collect()
    }

    #[test]
    fn matches_the_reference_encoder() {
        // Packets below, at and across the 4096-frame block, one frame, and sequences of them,
        // so the predictor and index carried between packets are checked too.
        let packets = [1usize, 882, 4095, 4096, 4097, 10_000, 1023, 2, 8192, 3, 441];
        for channels in 1..=2u8 {
            for bits in 2..=5u8 {
                for kind in 0..4 {
                    let mut enc = AdpcmSwf::new(44_100, channels, bits).unwrap();
                    let mut reference = Reference::new(bits, usize::from(channels));
                    for (n, &frames) in packets.iter().enumerate() {
                        let frames = enc.fit_frames(frames);
                        let samples = frames * usize::from(channels);
                        let pcm = signal(kind, samples, (n as u32 + 1).wrapping_mul(0x9E37_79B9));
                        let mut out = vec![0u8; enc.max_encoded_len(frames)];
                        let len = enc.encode(&pcm, &mut out).unwrap();
                        let context =
                            format!("{channels} ch, {bits} bits, signal {kind}, packet {n}");
                        assert_eq!(&out[..len], &reference.encode(&pcm)[..], "{context}");
                        for (state, &(predictor, index)) in
                            enc.channels.iter().zip(&reference.state)
                        {
                            assert_eq!(
                                (state.predictor, state.index),
                                (predictor, index),
                                "{context}"
                            );
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn hand_computed_mono_packet() {
        // 100 → header; 110: diff 10, step 7: magnitude 4|2 (7 + 3), delta 10 + 0 → 110, code
        // 0110, index 0 + 6; 100: diff -10, step 13: magnitude 2|1 (6 + 3), delta 9 + 1 → 100,
        // code 1011, index 6 - 1.
        let mut enc = AdpcmSwf::new(44_100, 1, 4).unwrap();
        let mut out = [0u8; 8];
        let n = enc.encode(&[100, 110, 100], &mut out).unwrap();
        // 10 | 0000000001100100 | 000000 | 0110 | 1011
        assert_eq!(&out[..n], &[0x80, 0x19, 0x00, 0x6B]);
        assert_eq!(enc.channels[0].predictor, 100);
        assert_eq!(enc.channels[0].index, 5);
        assert_eq!(enc.tag_header().to_byte(), 0x1E);
    }

    #[test]
    fn step_index_is_clamped_into_six_bits() {
        // A full-scale square wave drives the index to 88 within one block...
        let mut enc = AdpcmSwf::new(44_100, 1, 4).unwrap();
        let pcm: Vec<i16> = (0..4096)
            .map(|i| if i % 2 == 0 { 32767 } else { -32768 })
            .collect();
        let mut out = vec![0u8; enc.max_encoded_len(4096)];
        assert_eq!(enc.encode(&pcm, &mut out), Ok(out.len()));
        assert_eq!(enc.channels[0].index, 88);
        // ...and the next block header carries it as 63, and encoding continues from 63.
        let n = enc.encode(&[-1234], &mut out).unwrap();
        assert_eq!(n, 3);
        assert_eq!(bits_at(&out, 2, 16) as u16 as i16, -1234);
        assert_eq!(bits_at(&out, 18, 6), 63);
        assert_eq!(enc.channels[0].index, 63);
    }

    #[test]
    fn code_size_field_and_lengths() {
        for bits in 2..=5u8 {
            let mut enc = AdpcmSwf::new(22_050, 2, bits).unwrap();
            let frames = enc.fit_frames(1024);
            let pcm = vec![0i16; frames * 2];
            let mut out = vec![0u8; enc.max_encoded_len(frames)];
            let n = enc.encode(&pcm, &mut out).unwrap();
            assert_eq!(bits_at(&out, 0, 2), u32::from(bits) - 2);
            assert_eq!(
                n,
                (2 + 44 + (frames - 1) * 2 * usize::from(bits)).div_ceil(8)
            );
            assert_eq!(enc.decoded_frames(n), frames);
        }
    }

    #[test]
    fn fit_frames_matches_padding_arithmetic() {
        let mono4 = AdpcmSwf::new(44_100, 1, 4).unwrap();
        // 2 + 22 + 4 * (1024 - 1) = 4116 bits: 4 padding bits, read as one more code.
        assert_eq!(mono4.decoded_frames(mono4.encoded_len(1024)), 1025);
        assert_eq!(mono4.fit_frames(1024), 1023);
        assert_eq!(mono4.fit_frames(4096), 4096);
        assert_eq!(mono4.fit_frames(8192), 8192);
        let stereo4 = AdpcmSwf::new(44_100, 2, 4).unwrap();
        assert!((0..10_000).all(|f| stereo4.fit_frames(f) == f));
        for channels in 1..=2 {
            for bits in 2..=5 {
                let enc = AdpcmSwf::new(44_100, channels, bits).unwrap();
                for f in 0..9000 {
                    let fit = enc.fit_frames(f);
                    assert!(fit <= f && f - fit < 8, "{channels} ch {bits} bits {f}");
                    assert_eq!(enc.decoded_frames(enc.encoded_len(fit)), fit);
                }
            }
        }
    }

    #[test]
    fn refuses_inexact_counts_bad_bits_and_small_buffers() {
        let mut enc = AdpcmSwf::new(44_100, 1, 4).unwrap();
        let mut out = [0u8; 1024];
        assert_eq!(
            enc.encode(&[0; 1024], &mut out),
            Err(CodecError::InexactFrameCount {
                frames: 1024,
                fit: 1023
            })
        );
        assert_eq!(
            enc.encode(&[0; 1023], &mut out[..10]),
            Err(CodecError::OutputTooSmall {
                needed: 514,
                available: 10
            })
        );
        assert_eq!(
            AdpcmSwf::new(44_100, 1, 6).map(|_| ()),
            Err(CodecError::UnsupportedBits { bits: 6 })
        );
        let mut enc = AdpcmSwf::new(44_100, 2, 4).unwrap();
        assert_eq!(
            enc.encode(&[0; 3], &mut out),
            Err(CodecError::PartialFrame {
                samples: 3,
                channels: 2
            })
        );
        // No frames: just the code size field.
        assert_eq!(enc.encode(&[], &mut out), Ok(1));
        assert_eq!(out[0], 0x80);
    }
}
