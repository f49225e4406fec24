//! Helpers shared by the fuzz targets: a byte reader for structured inputs and a tiny PRNG that
//! turns one byte of the input into the sizes of the pieces the input is fed in, so every target
//! sees its bytes in random splits without needing `arbitrary`.

/// xorshift32 (Marsaglia, "Xorshift RNGs", 2003): enough to pick split sizes deterministically.
#[derive(Clone, Copy, Debug)]
pub struct Rng(u32);

impl Rng {
    /// A generator seeded from one input byte (never the all-zero state xorshift cannot leave).
    pub fn new(seed: u8) -> Self {
        Self(u32::from(seed).wrapping_mul(0x9E37_79B9) | 1)
    }

    /// The next 32 random bits.
    pub fn next_u32(&mut self) -> u32 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        self.0 = x;
        x
    }

    /// A value in `0..n` (0 when `n` is 0).
    pub fn below(&mut self, n: usize) -> usize {
        if n == 0 {
            0
        } else {
            self.next_u32() as usize % n
        }
    }

    /// A piece length of at least 1: mostly tiny (1..=8, where header parsing splits), sometimes
    /// up to a chunk (64), sometimes large (4096), so both byte-at-a-time and bulk paths run.
    pub fn piece_len(&mut self) -> usize {
        match self.below(10) {
            0..=4 => 1 + self.below(8),
            5..=7 => 1 + self.below(64),
            _ => 1 + self.below(4096),
        }
    }

    /// Splits `data` into consecutive pieces of [`Rng::piece_len`] bytes (the last may be shorter).
    pub fn pieces<'a>(&mut self, data: &'a [u8]) -> Vec<&'a [u8]> {
        let mut out = Vec::new();
        let mut rest = data;
        while !rest.is_empty() {
            let (piece, tail) = rest.split_at(self.piece_len().min(rest.len()));
            out.push(piece);
            rest = tail;
        }
        out
    }
}

/// Splits a fuzz input into the PRNG seed (its first byte) and the rest.
pub fn seed_and_rest(data: &[u8]) -> Option<(Rng, &[u8])> {
    let (&seed, rest) = data.split_first()?;
    Some((Rng::new(seed), rest))
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

    /// True when nothing is left.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}
