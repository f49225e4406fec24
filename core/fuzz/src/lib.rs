//! Helpers shared by the zerocast-core fuzz targets.
//!
//! A peer's bytes reach the core in whatever pieces TCP hands over, and every parser must give the
//! same result for any split. [`split`] lets the fuzzer choose the split along with the bytes, so
//! one input exercises both the content and the resumption logic (a reader that loses state at a
//! piece boundary is a classic streaming-parser bug).

/// Splits a fuzz input into the pieces it is fed in.
///
/// The first byte is the split seed, the rest is the payload. The seed's low 3 bits pick the
/// largest piece, `1 << (seed & 7)` bytes (1 to 128: byte-at-a-time up to a whole default RTMP
/// chunk), and all 8 bits seed an xorshift sequence that picks each piece's length in
/// `1..=largest`. Concatenating the pieces always gives back the payload exactly.
pub fn split(input: &[u8]) -> Splits<'_> {
    match input.split_first() {
        Some((&seed, payload)) => Splits {
            rest: payload,
            largest: 1 << (seed & 7),
            // xorshift never leaves 0, so map seed 0 elsewhere.
            state: u32::from(seed) | 0x100,
        },
        None => Splits {
            rest: &[],
            largest: 1,
            state: 1,
        },
    }
}

/// The pieces of a payload, as chosen by [`split`]; never yields an empty piece.
#[derive(Clone, Debug)]
pub struct Splits<'a> {
    rest: &'a [u8],
    largest: usize,
    state: u32,
}

impl<'a> Iterator for Splits<'a> {
    type Item = &'a [u8];

    fn next(&mut self) -> Option<&'a [u8]> {
        if self.rest.is_empty() {
            return None;
        }
        // Marsaglia's xorshift32 (13, 17, 5): cheap, and the fuzzer only needs variety.
        self.state ^= self.state << 13;
        self.state ^= self.state >> 17;
        self.state ^= self.state << 5;
        let want = 1 + (self.state as usize) % self.largest;
        let (piece, rest) = self.rest.split_at(want.min(self.rest.len()));
        self.rest = rest;
        Some(piece)
    }
}

#[cfg(test)]
mod tests {
    use super::split;

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
}
