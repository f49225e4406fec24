//! Model test of `ring::Ring` against a plain reference: a `VecDeque` of whole messages with the
//! eviction rule from the module docs, written here without any of the ring's arena arithmetic.
//! A deterministic xorshift PRNG drives random pushes (sizes from 0 to past the arena), several
//! cursors, reads, partial advances (mid-message included), lag detection and skipping, and
//! joins by time; every read must give exactly the bytes the reference gives.

use std::collections::VecDeque;
use zerocast_core::ring::{
    Cursor, Lagged, Pcm2sRing, PushError, Ring, PCM_2S_MESSAGES, PCM_MESSAGE_BYTES,
};

/// xorshift64* (Vigna 2016): deterministic, no dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

struct Message {
    seq: u64,
    start: u64,
    time: u64,
    bytes: Vec<u8>,
}

/// The reference: whole messages in order, placed on virtual byte positions that keep counting
/// across laps of `bytes` bytes.
struct Model {
    bytes: u64,
    slots: usize,
    messages: VecDeque<Message>,
    next_seq: u64,
    write: u64,
}

#[derive(Clone, Copy, Debug, PartialEq)]
struct ModelCursor {
    seq: u64,
    offset: usize,
}

impl Model {
    fn oldest(&self) -> u64 {
        self.messages.front().map_or(self.next_seq, |m| m.seq)
    }

    fn push(&mut self, time: u64, bytes: Vec<u8>) -> Result<u64, PushError> {
        let len = bytes.len() as u64;
        if len > self.bytes {
            return Err(PushError::TooLarge {
                len: bytes.len(),
                capacity: self.bytes as usize,
            });
        }
        // Never straddle the end of a lap: start the next lap instead.
        let offset = self.write % self.bytes;
        let start = if offset != 0 && offset + len > self.bytes {
            self.write + self.bytes - offset
        } else {
            self.write
        };
        let end = start + len;
        while let Some(front) = self.messages.front() {
            if self.messages.len() == self.slots || front.start + self.bytes < end {
                self.messages.pop_front();
            } else {
                break;
            }
        }
        let seq = self.next_seq;
        self.messages.push_back(Message {
            seq,
            start,
            time,
            bytes,
        });
        self.next_seq += 1;
        self.write = end;
        self.check_layout();
        Ok(seq)
    }

    /// The rule is only sound if retained messages never share arena bytes and none straddles
    /// the arena end: check that on the physical offsets.
    fn check_layout(&self) {
        let mut ranges: Vec<(u64, u64)> = self
            .messages
            .iter()
            .filter(|m| !m.bytes.is_empty())
            .map(|m| {
                let off = m.start % self.bytes;
                (off, off + m.bytes.len() as u64)
            })
            .collect();
        ranges.sort();
        for r in &ranges {
            assert!(r.1 <= self.bytes, "message straddles the arena end: {r:?}");
        }
        for w in ranges.windows(2) {
            assert!(w[0].1 <= w[1].0, "retained messages overlap: {w:?}");
        }
    }

    fn read(&self, c: &ModelCursor) -> Result<Vec<u8>, Lagged> {
        if c.seq < self.oldest() {
            return Err(Lagged {
                skipped: self.oldest() - c.seq,
            });
        }
        let mut out = Vec::new();
        for m in self.messages.iter().filter(|m| m.seq >= c.seq) {
            let skip = if m.seq == c.seq { c.offset } else { 0 };
            out.extend_from_slice(&m.bytes[skip..]);
        }
        Ok(out)
    }

    fn advance(&self, c: &mut ModelCursor, mut n: usize) {
        if c.seq < self.oldest() {
            return;
        }
        let from = c.seq;
        for m in self.messages.iter().filter(|m| m.seq >= from) {
            let rest = m.bytes.len() - c.offset;
            if n < rest {
                c.offset += n;
                return;
            }
            n -= rest;
            c.seq = m.seq + 1;
            c.offset = 0;
        }
    }

    fn since(&self, time: u64) -> u64 {
        self.messages
            .iter()
            .find(|m| m.time >= time)
            .map_or(self.next_seq, |m| m.seq)
    }
}

#[derive(Default, Debug)]
struct Coverage {
    pushes: u64,
    too_large: u64,
    evictions: u64,
    two_slice_reads: u64,
    mid_message_advances: u64,
    lagged: u64,
    lagged_mid_message: u64,
    zero_length: u64,
    full_arena: u64,
}

fn run<const BYTES: usize, const SLOTS: usize>(seed: u64, steps: usize) -> Coverage {
    const CURSORS: usize = 4;
    let mut rng = Rng(seed);
    let mut ring: Ring<BYTES, SLOTS> = Ring::new();
    let mut model = Model {
        bytes: BYTES as u64,
        slots: SLOTS,
        messages: VecDeque::new(),
        next_seq: 0,
        write: 0,
    };
    let mut cursors: Vec<(Cursor, ModelCursor)> = (0..CURSORS)
        .map(|_| (ring.cursor_at_head(), ModelCursor { seq: 0, offset: 0 }))
        .collect();
    let mut cov = Coverage::default();
    let mut time = 0u64;
    let mut counter = 0u8;

    for step in 0..steps {
        match rng.below(10) {
            // Push: mostly small, sometimes large, sometimes the edge sizes.
            0..=3 => {
                let len = match rng.below(20) {
                    0 => 0,
                    1 => BYTES,
                    2 => BYTES + 1 + rng.below(3) as usize,
                    3..=5 => rng.below(BYTES as u64 + 1) as usize,
                    _ => rng.below(BYTES as u64 / 4 + 1) as usize,
                };
                // Stream time mostly grows, occasionally jumps back (a new publisher).
                time = if rng.below(50) == 0 {
                    time / 2
                } else {
                    time + rng.below(40)
                };
                let bytes: Vec<u8> = (0..len)
                    .map(|_| {
                        counter = counter.wrapping_add(1);
                        counter
                    })
                    .collect();
                let before = ring.len() as u64 + 1;
                let got = ring.push_with(time, len, |dst| dst.copy_from_slice(&bytes));
                let want = model.push(time, bytes);
                assert_eq!(got, want, "step {step}: push of {len}");
                match got {
                    Ok(_) => {
                        cov.pushes += 1;
                        cov.evictions += before - ring.len() as u64;
                        cov.zero_length += u64::from(len == 0);
                        cov.full_arena += u64::from(len == BYTES);
                    }
                    Err(_) => cov.too_large += 1,
                }
            }
            // Read and partially advance one cursor.
            4..=7 => {
                let i = rng.below(CURSORS as u64) as usize;
                let (c, m) = &mut cursors[i];
                let got = ring.read(c);
                let want = model.read(m);
                match (got, want) {
                    (Ok(s), Ok(w)) => {
                        let mut all = s.first.to_vec();
                        all.extend_from_slice(s.second);
                        assert_eq!(all, w, "step {step}: cursor {i} bytes");
                        assert_eq!(s.len(), w.len());
                        cov.two_slice_reads += u64::from(!s.second.is_empty());
                        // Sometimes all of it, mostly part of it (a short writev).
                        let n = if rng.below(4) == 0 {
                            w.len()
                        } else {
                            rng.below(w.len() as u64 + 1) as usize
                        };
                        ring.advance(c, n);
                        model.advance(m, n);
                        cov.mid_message_advances += u64::from(!c.at_boundary());
                        assert_eq!(c.sequence(), m.seq, "step {step}: cursor {i} seq");
                        assert_eq!(c.at_boundary(), m.offset == 0, "step {step}");
                    }
                    (Err(g), Err(w)) => {
                        assert_eq!(g, w, "step {step}: cursor {i} lag");
                        cov.lagged += 1;
                        cov.lagged_mid_message += u64::from(!c.at_boundary());
                        // Advancing a lagged cursor does nothing.
                        let before = *c;
                        ring.advance(c, 5);
                        assert_eq!(*c, before);
                        assert_eq!(ring.skip_lagged(c), w.skipped);
                        *m = ModelCursor {
                            seq: model.oldest(),
                            offset: 0,
                        };
                        assert_eq!(c.sequence(), m.seq);
                    }
                    (g, w) => panic!("step {step}: cursor {i}: ring {g:?}, model {w:?}"),
                }
            }
            // Rejoin: at the live edge or from a point in time.
            8 => {
                let i = rng.below(CURSORS as u64) as usize;
                let (c, m) = &mut cursors[i];
                if rng.below(2) == 0 {
                    *c = ring.cursor_at_head();
                    *m = ModelCursor {
                        seq: model.next_seq,
                        offset: 0,
                    };
                } else {
                    let t = time.saturating_sub(rng.below(200));
                    *c = ring.cursor_since(t);
                    *m = ModelCursor {
                        seq: model.since(t),
                        offset: 0,
                    };
                }
                assert_eq!(c.sequence(), m.seq, "step {step}: rejoin");
            }
            // Bookkeeping.
            _ => {
                assert_eq!(ring.len(), model.messages.len());
                assert_eq!(ring.is_empty(), model.messages.is_empty());
                assert_eq!(ring.oldest_sequence(), model.oldest());
                assert_eq!(ring.next_sequence(), model.next_seq);
                assert_eq!(ring.latest_time(), model.messages.back().map(|m| m.time));
            }
        }
    }
    cov
}

/// Each configuration must really have exercised the interesting paths, or the comparison
/// proves little.
fn assert_covered(name: &str, cov: &Coverage) {
    println!("{name}: {cov:?}");
    assert!(cov.pushes > 1000, "{name}: {cov:?}");
    assert!(cov.too_large > 0, "{name}: {cov:?}");
    assert!(cov.evictions > 500, "{name}: {cov:?}");
    assert!(cov.two_slice_reads > 100, "{name}: {cov:?}");
    assert!(cov.mid_message_advances > 100, "{name}: {cov:?}");
    assert!(cov.lagged > 50, "{name}: {cov:?}");
    assert!(cov.lagged_mid_message > 0, "{name}: {cov:?}");
    assert!(cov.zero_length > 10, "{name}: {cov:?}");
    assert!(cov.full_arena > 10, "{name}: {cov:?}");
}

#[test]
fn model_bytes_bound_ring() {
    assert_covered(
        "Ring<64, 16>",
        &run::<64, 16>(0x9E37_79B9_7F4A_7C15, 20_000),
    );
}

#[test]
fn model_odd_sizes() {
    assert_covered("Ring<37, 7>", &run::<37, 7>(0xDEAD_BEEF_CAFE_F00D, 20_000));
}

#[test]
fn model_slot_bound_ring() {
    assert_covered(
        "Ring<512, 3>",
        &run::<512, 3>(0x0123_4567_89AB_CDEF, 20_000),
    );
}

#[test]
fn model_many_seeds() {
    for seed in 1..=20u64 {
        let cov = run::<100, 9>(seed.wrapping_mul(0x2545_F491_4F6C_DD1D), 3_000);
        assert!(
            cov.two_slice_reads > 0 && cov.lagged > 0,
            "seed {seed}: {cov:?}"
        );
    }
}

/// The memory of the ring sized for two seconds of 44.1 kHz stereo PCM, and proof that it does
/// hold two seconds of such messages.
#[test]
fn pcm_2s_ring_memory() {
    let size = std::mem::size_of::<Pcm2sRing>();
    let arena = PCM_2S_MESSAGES * PCM_MESSAGE_BYTES;
    println!(
        "Pcm2sRing = Ring<{arena}, 128>: size_of = {size} bytes ({:.1} KiB): arena {arena} + \
         index {} ({} bytes per slot)",
        size as f64 / 1024.0,
        size - arena,
        (size - arena) / 128
    );
    assert!(size >= arena && size <= arena + 128 * 24 + 64, "{size}");

    let mut ring = Box::new(Pcm2sRing::new());
    let frames_per_message = 1024u64;
    for n in 0..1000u64 {
        let time = n * frames_per_message * 1000 / 44_100;
        ring.push_with(time, PCM_MESSAGE_BYTES, |dst| dst.fill(n as u8))
            .unwrap();
        let latest = ring.latest_time().unwrap();
        if latest >= 2000 {
            let join = ring.cursor_since(latest - 2000);
            // 2000 ms / 23.2 ms per message: the newest message and 86 before it.
            let buffered = ring.read(&join).unwrap().len();
            assert_eq!(buffered % PCM_MESSAGE_BYTES, 0);
            assert!(buffered / PCM_MESSAGE_BYTES >= 87, "n {n}: {buffered}");
        }
    }
}
