//! Helpers shared by the zerocast-core fuzz targets.
//!
//! A peer's bytes reach the core in whatever pieces TCP hands over, and every parser must give the
//! same result for any split. [`split`] lets the fuzzer choose the split along with the bytes, so
//! one input exercises both the content and the resumption logic (a reader that loses state at a
//! piece boundary is a classic streaming-parser bug). Targets that need other random choices
//! (cut points, frame counts) draw them from the same seed with [`Rng`], and read structured
//! inputs (operation lists, records) with [`Bytes`].

/// Marsaglia's xorshift32 (13, 17, 5; "Xorshift RNGs", 2003): cheap, deterministic, and the
/// fuzzer only needs variety.
#[derive(Clone, Copy, Debug)]
pub struct Rng(u32);

impl Rng {
    /// A generator seeded from one input byte. xorshift never leaves 0, so the seed is moved
    /// into a non-zero state.
    pub fn new(seed: u8) -> Self {
        Self(u32::from(seed) | 0x100)
    }

    /// The next 32 random bits.
    pub fn next_u32(&mut self) -> u32 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 17;
        self.0 ^= self.0 << 5;
        self.0
    }

    /// A value in `0..n` (0 when `n` is 0).
    pub fn below(&mut self, n: usize) -> usize {
        if n == 0 {
            0
        } else {
            self.next_u32() as usize % n
        }
    }
}

/// Splits a fuzz input into the pieces it is fed in: the first byte is the split seed, the rest
/// is the payload (see [`split_with`]).
pub fn split(input: &[u8]) -> Splits<'_> {
    match input.split_first() {
        Some((&seed, payload)) => split_with(seed, payload),
        None => split_with(0, &[]),
    }
}

/// Splits `payload` into pieces chosen by `seed`. The seed's low 3 bits pick the largest piece,
/// `1 << (seed & 7)` bytes (1 to 128: byte-at-a-time up to a whole default RTMP chunk), and all
/// 8 bits seed the [`Rng`] that picks each piece's length in `1..=largest`. Concatenating the
/// pieces always gives back the payload exactly.
pub fn split_with(seed: u8, payload: &[u8]) -> Splits<'_> {
    Splits {
        rest: payload,
        largest: 1 << (seed & 7),
        rng: Rng::new(seed),
    }
}

/// Splits a fuzz input into the [`Rng`] its first byte seeds and the rest.
pub fn seed_and_rest(input: &[u8]) -> Option<(Rng, &[u8])> {
    let (&seed, rest) = input.split_first()?;
    Some((Rng::new(seed), rest))
}

/// The pieces of a payload, as chosen by [`split`]; never yields an empty piece.
#[derive(Clone, Debug)]
pub struct Splits<'a> {
    rest: &'a [u8],
    largest: usize,
    rng: Rng,
}

impl<'a> Iterator for Splits<'a> {
    type Item = &'a [u8];

    fn next(&mut self) -> Option<&'a [u8]> {
        if self.rest.is_empty() {
            return None;
        }
        let want = 1 + self.rng.below(self.largest);
        let (piece, rest) = self.rest.split_at(want.min(self.rest.len()));
        self.rest = rest;
        Some(piece)
    }
}

/// Reads fixed-size fields off the front of a byte slice; `None` once it runs out.
#[derive(Clone, Copy, Debug)]
pub struct Bytes<'a>(pub &'a [u8]);

impl<'a> Bytes<'a> {
    /// The next `n` bytes.
    pub fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        if self.0.len() < n {
            return None;
        }
        let (head, tail) = self.0.split_at(n);
        self.0 = tail;
        Some(head)
    }

    /// The next byte.
    pub fn u8(&mut self) -> Option<u8> {
        self.take(1).map(|b| b[0])
    }

    /// The next two bytes, little-endian.
    pub fn u16(&mut self) -> Option<u16> {
        self.take(2).map(|b| u16::from_le_bytes([b[0], b[1]]))
    }

    /// The next four bytes, little-endian.
    pub fn u32(&mut self) -> Option<u32> {
        self.take(4)
            .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }
}

#[cfg(test)]
mod tests {
    use super::{split, Bytes, Rng};

    #[test]
    fn empty_input_and_seed_only_give_no_pieces() {
        assert_eq!(split(&[]).count(), 0);
        assert_eq!(split(&[0x42]).count(), 0);
    }

    #[test]
    fn pieces_concatenate_to_the_payload_for_every_seed() {
        let payload: Vec<u8> = (0..=255u8).cycle().take(1000).collect();
        for seed in 0..=255u8 {
            let mut input = vec![seed];
            input.extend_from_slice(&payload);
            let pieces: Vec<&[u8]> = split(&input).collect();
            assert!(pieces.iter().all(|p| !p.is_empty()), "seed {seed}");
            let largest = 1usize << (seed & 7);
            assert!(pieces.iter().all(|p| p.len() <= largest), "seed {seed}");
            assert_eq!(pieces.concat(), payload, "seed {seed}");
        }
    }

    #[test]
    fn seed_low_bits_choose_the_largest_piece() {
        let payload = [7u8; 600];
        // Seed 0: largest piece 1, so byte at a time.
        let mut input = vec![0u8];
        input.extend_from_slice(&payload);
        assert_eq!(split(&input).count(), 600);
        // Seed 7: pieces up to 128 bytes, so at least 5 and, on average, far fewer than 600.
        input[0] = 7;
        let n = split(&input).count();
        assert!((5..100).contains(&n), "{n} pieces");
        // Different seeds with the same largest piece give different splits.
        input[0] = 0x0f;
        let a: Vec<usize> = split(&input).map(<[u8]>::len).collect();
        input[0] = 0x17;
        let b: Vec<usize> = split(&input).map(<[u8]>::len).collect();
        assert_ne!(a, b);
    }

    #[test]
    fn rng_below_stays_in_range() {
        let mut rng = Rng::new(0);
        assert_eq!(rng.below(0), 0);
        assert!((0..1000).all(|_| rng.below(7) < 7));
    }

    #[test]
    fn bytes_reads_little_endian_fields_until_short() {
        let mut b = Bytes(&[1, 2, 3, 4, 5, 6, 7, 8]);
        assert_eq!(b.u8(), Some(1));
        assert_eq!(b.u16(), Some(0x0302));
        assert_eq!(b.u32(), Some(0x0706_0504));
        assert_eq!(b.u16(), None);
        assert_eq!(b.take(1), Some(&[8][..]));
        assert_eq!(b.u8(), None);
    }
}
