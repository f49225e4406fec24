//! `Ring` against a model: a sequence of operations decoded from the input runs on a small
//! `Ring<256, 8>` (so wraps, eviction by bytes and by slots all happen within a few pushes) and on
//! a `VecDeque` of the retained messages with model cursors.
//!
//! Operations (one byte, then its arguments): push / push_with of a length (0..300, so some are
//! `TooLarge`) at a stream time that may go backwards; advance cursor i by all or part of what
//! read returned (the split sizes of a `writev` that sent less); skip_lagged; cursor_since;
//! cursor_at_head. Checked after each step: every cursor reads exactly the model's bytes from its
//! position (or `Lagged` with the model's count), the cursor's sequence and boundary flag match,
//! the newest message is always retained, retention never exceeds the arena or the slots, and
//! messages are never evicted early: the newest messages that fit in half the arena (and the
//! slots) are all still there, whatever the wrap wasted.
#![no_main]

use std::collections::VecDeque;

use libfuzzer_sys::fuzz_target;
use zerocast_core::ring::{Cursor, Lagged, PushError, Ring};
use zerocast_core_fuzz::Bytes;

const BYTES: usize = 256;
const SLOTS: usize = 8;
const CURSORS: usize = 4;

/// A model message: sequence number, stream time, contents.
struct Message {
    sequence: u64,
    time: u64,
    bytes: Vec<u8>,
}

/// A model cursor.
#[derive(Clone, Copy)]
struct ModelCursor {
    sequence: u64,
    offset: usize,
}

struct Model {
    /// Retained messages, oldest first.
    retained: VecDeque<Message>,
    /// Lengths of every message pushed, newest last (for the early-eviction check).
    history: Vec<usize>,
    head: u64,
}

impl Model {
    fn tail(&self) -> u64 {
        self.retained.front().map_or(self.head, |m| m.sequence)
    }

    fn read(&self, c: ModelCursor) -> Result<Vec<u8>, Lagged> {
        if c.sequence < self.tail() {
            return Err(Lagged {
                skipped: self.tail() - c.sequence,
            });
        }
        let mut out = Vec::new();
        for m in self.retained.iter().filter(|m| m.sequence >= c.sequence) {
            let from = if m.sequence == c.sequence {
                c.offset
            } else {
                0
            };
            out.extend_from_slice(&m.bytes[from..]);
        }
        Ok(out)
    }

    fn advance(&self, c: &mut ModelCursor, mut n: usize) {
        if c.sequence < self.tail() {
            return;
        }
        while let Some(m) = self.retained.iter().find(|m| m.sequence == c.sequence) {
            let rest = m.bytes.len() - c.offset;
            if n < rest {
                c.offset += n;
                return;
            }
            n -= rest;
            c.sequence += 1;
            c.offset = 0;
        }
    }
}

/// Recognizable contents: each byte says which message and position it came from.
fn contents(sequence: u64, len: usize) -> Vec<u8> {
    (0..len)
        .map(|i| (sequence as u8).wrapping_mul(31).wrapping_add(i as u8))
        .collect()
}

fn check(ring: &Ring<BYTES, SLOTS>, model: &Model, cursors: &[(Cursor, ModelCursor)]) {
    assert_eq!(ring.next_sequence(), model.head);
    assert_eq!(ring.oldest_sequence(), model.tail());
    assert_eq!(ring.len(), model.retained.len());
    assert!(ring.len() <= SLOTS);
    assert!(model.retained.iter().map(|m| m.bytes.len()).sum::<usize>() <= BYTES);
    assert_eq!(
        ring.latest_time(),
        model
            .retained
            .back()
            .filter(|m| m.sequence + 1 == model.head)
            .map(|m| m.time)
    );
    for (i, (cursor, expected)) in cursors.iter().enumerate() {
        assert_eq!(cursor.sequence(), expected.sequence, "cursor {i}");
        assert_eq!(cursor.at_boundary(), expected.offset == 0, "cursor {i}");
        let got = ring.read(cursor).map(|s| {
            assert!(
                s.second.is_empty() || !s.first.is_empty(),
                "second without first"
            );
            [s.first, s.second].concat()
        });
        assert_eq!(got, model.read(*expected), "cursor {i}");
    }
}

fn step(
    input: &mut Bytes<'_>,
    ring: &mut Ring<BYTES, SLOTS>,
    model: &mut Model,
    cursors: &mut [(Cursor, ModelCursor); CURSORS],
    last_time: &mut u64,
) -> Option<()> {
    let op = input.u8()?;
    let i = usize::from(op >> 4) % CURSORS;
    let (cursor, expected) = &mut cursors[i];
    match op % 6 {
        0 => {
            let len = usize::from(input.u16()?) % 300;
            // Mostly forward, sometimes backward: cursor_since must not assume order.
            let time = last_time
                .saturating_add(u64::from(input.u8()?))
                .saturating_sub(16);
            *last_time = time;
            let bytes = contents(model.head, len);
            let pushed = if op & 8 == 0 {
                ring.push(time, &bytes)
            } else {
                ring.push_with(time, len, |dst| dst.copy_from_slice(&bytes))
            };
            if len > BYTES {
                assert_eq!(
                    pushed,
                    Err(PushError::TooLarge {
                        len,
                        capacity: BYTES
                    })
                );
                return Some(());
            }
            assert_eq!(pushed, Ok(model.head));
            model.retained.push_back(Message {
                sequence: model.head,
                time,
                bytes,
            });
            model.history.push(len);
            model.head += 1;
            let tail = ring.oldest_sequence();
            assert!(tail < model.head, "the newest message was evicted");
            while model.tail() < tail {
                model.retained.pop_front();
            }
            // Early eviction: the newest k <= SLOTS messages of at most BYTES / 2 bytes in all
            // span less than BYTES even with a wrap (a wrap wastes less than the message that
            // wrapped), so none of them may have been evicted.
            let mut sum = 0;
            let keep = model
                .history
                .iter()
                .rev()
                .take(SLOTS)
                .take_while(|&&len| {
                    sum += len;
                    sum <= BYTES / 2
                })
                .count();
            assert!(ring.len() >= keep, "evicted early: {} < {keep}", ring.len());
        }
        1 => {
            // A writev that sent everything.
            let available = ring.read(cursor).map_or(0, |s| s.len());
            ring.advance(cursor, available);
            model.advance(expected, available);
        }
        2 => {
            let available = ring.read(cursor).map_or(0, |s| s.len());
            let n = usize::from(input.u16()?) % (available + 1);
            ring.advance(cursor, n);
            model.advance(expected, n);
        }
        3 => {
            let skipped = ring.skip_lagged(cursor);
            let tail = model.tail();
            let want = tail.saturating_sub(expected.sequence);
            if want > 0 {
                *expected = ModelCursor {
                    sequence: tail,
                    offset: 0,
                };
            }
            assert_eq!(skipped, want);
        }
        4 => {
            let since = last_time.saturating_sub(u64::from(input.u8()?));
            *cursor = ring.cursor_since(since);
            let sequence = model
                .retained
                .iter()
                .find(|m| m.time >= since)
                .map_or(model.head, |m| m.sequence);
            *expected = ModelCursor {
                sequence,
                offset: 0,
            };
        }
        _ => {
            *cursor = ring.cursor_at_head();
            *expected = ModelCursor {
                sequence: model.head,
                offset: 0,
            };
        }
    }
    Some(())
}

fuzz_target!(|data: &[u8]| {
    let mut ring: Box<Ring<BYTES, SLOTS>> = Box::new(Ring::new());
    let mut model = Model {
        retained: VecDeque::new(),
        history: Vec::new(),
        head: 0,
    };
    let start = ModelCursor {
        sequence: 0,
        offset: 0,
    };
    let mut cursors = [(ring.cursor_at_head(), start); CURSORS];
    let mut last_time = 0;
    let mut input = Bytes(data);
    while step(
        &mut input,
        &mut ring,
        &mut model,
        &mut cursors,
        &mut last_time,
    )
    .is_some()
    {
        check(&ring, &model, &cursors);
    }
});
