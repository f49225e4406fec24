//! `ChunkReader` over arbitrary bytes in random splits, and `ChunkWriter` → `ChunkReader` round
//! trips.
//!
//! Input: byte 0 seeds the split sizes; the rest is read twice:
//! 1. as a peer's chunk stream, fed whole and fed in random pieces the way the session does
//!    (unconsumed bytes are presented again with the next piece). Both runs must give the same
//!    messages and the same error, and without an error consume the same bytes: the reader's
//!    result must not depend on how TCP split the bytes.
//!    Every call must consume no more than it was given, make progress whenever it returns a
//!    message, return payloads of the header's length, and count every consumed byte in
//!    `bytes_received`.
//! 2. as a list of message records (see [`records`]), written with `ChunkWriter` at chunk sizes
//!    the records change (announced with Set Chunk Size, as a session does) and read back in
//!    random pieces: the reader must return exactly the messages written and consume every byte.
#![no_main]

use libfuzzer_sys::fuzz_target;
use zerocast_core::chunk::{ChunkError, ChunkReader, ChunkWriter, MessageHeader};
use zerocast_core::message::{self, Control};
use zerocast_core_fuzz::{split, split_with, Bytes};

/// The session's reader: 8 chunk streams, 16 KiB arena (design.md).
type Reader = ChunkReader<8, 16384>;
const MAX_MESSAGE: u32 = 16384;

type Owned = (MessageHeader, Vec<u8>);

/// What a reader made of a byte stream.
#[derive(Debug)]
struct Outcome {
    messages: Vec<Owned>,
    error: Option<ChunkError>,
    consumed: u64,
}

/// Feeds `pieces` to a fresh reader with `skip_mask`, checking the per-call invariants.
fn run<'a>(pieces: impl IntoIterator<Item = &'a [u8]>, skip_mask: u32) -> Outcome {
    let mut reader = Box::new(Reader::new(MAX_MESSAGE));
    reader.set_skip_mask(skip_mask);
    let mut pending: Vec<u8> = Vec::new();
    let mut outcome = Outcome {
        messages: Vec::new(),
        error: None,
        consumed: 0,
    };
    for piece in pieces {
        pending.extend_from_slice(piece);
        loop {
            let (used, message) = match reader.read(&pending) {
                Ok((used, message)) => (used, message.map(|m| (m.header, m.payload.to_vec()))),
                Err(e) => {
                    outcome.error = Some(e);
                    return outcome;
                }
            };
            assert!(
                used <= pending.len(),
                "consumed {used} of {}",
                pending.len()
            );
            // A call that returns a message without consuming could be repeated forever by a
            // caller that reads until `(0, None)`.
            assert!(used > 0 || message.is_none(), "message without progress");
            if let Some((header, payload)) = message {
                assert_eq!(payload.len(), header.length as usize);
                assert!(header.length <= MAX_MESSAGE);
                // Set Chunk Size and Abort are always read; other masked types never returned.
                let always = (1 << message::SET_CHUNK_SIZE) | (1 << message::ABORT);
                let bit = 1u32.checked_shl(u32::from(header.type_id)).unwrap_or(0);
                assert_eq!(skip_mask & !always & bit, 0, "skipped type returned");
                outcome.messages.push((header, payload));
            }
            outcome.consumed += used as u64;
            pending.drain(..used);
            assert_eq!(reader.bytes_received(), outcome.consumed);
            if used == 0 {
                break;
            }
        }
    }
    outcome
}

/// One step of a round trip.
enum Record<'a> {
    /// Announce and switch to a new chunk size.
    ChunkSize(u32),
    /// Write one message.
    Message(MessageHeader, &'a [u8]),
}

/// Chunk stream ids the records use: both basic header size boundaries (63/64, 319/320) and the
/// largest id; 2 is also the control stream. 8 ids = the reader's and writer's slot count.
const CSIDS: [u32; 8] = [2, 3, 4, 63, 64, 319, 320, 65_599];

/// Decodes records until the input runs out. A record is `csid_index` (0xFF: the next u16 + 1 is
/// a new chunk size), `type`, `timestamp mode` (0: repeat this csid's last delta, 1: u16 delta,
/// 2: absolute u32, 3: a delta just around the 0xFFFFFF extended-timestamp threshold), the
/// timestamp bytes, `stream id index`, u16 length (masked to 8191) and the payload.
fn records(data: &[u8]) -> Vec<Record<'_>> {
    let mut input = Bytes(data);
    let mut out = Vec::new();
    // Per csid index: last timestamp and delta.
    let mut last = [(0u32, 0u32); CSIDS.len()];
    while let Some(record) = record(&mut input, &mut last) {
        out.push(record);
    }
    out
}

fn record<'a>(input: &mut Bytes<'a>, last: &mut [(u32, u32); 8]) -> Option<Record<'a>> {
    let selector = input.u8()?;
    if selector == 0xFF {
        return Some(Record::ChunkSize(u32::from(input.u16()?) + 1));
    }
    let index = usize::from(selector) % CSIDS.len();
    // Types 1..=6 are protocol control messages the reader parses and applies; an arbitrary
    // payload would be an error, not a round trip. Chunk size changes have their own record.
    let type_id = match input.u8()? {
        1..=6 => message::AUDIO,
        t => t,
    };
    let (previous, delta) = last[index];
    let timestamp = match input.u8()? % 4 {
        0 => previous.wrapping_add(delta),
        1 => previous.wrapping_add(u32::from(input.u16()?)),
        2 => input.u32()?,
        _ => previous.wrapping_add(0xFF_FFF0 + u32::from(input.u8()?)),
    };
    last[index] = (timestamp, timestamp.wrapping_sub(previous));
    let stream_id = [0, 1, 2, 0x0100_0000][usize::from(input.u8()? % 4)];
    let length = u32::from(input.u16()? & 0x1FFF);
    let payload = input.take(length as usize)?;
    let header = MessageHeader {
        csid: CSIDS[index],
        timestamp,
        length,
        type_id,
        stream_id,
    };
    Some(Record::Message(header, payload))
}

/// Writes `header` + `payload`, appending the chunks to `out`.
fn write(writer: &mut ChunkWriter<8>, out: &mut Vec<u8>, header: &MessageHeader, payload: &[u8]) {
    // Every chunk: at most 3 basic + 11 message header + 4 extended timestamp bytes.
    let chunks = payload.len().div_ceil(writer.chunk_size() as usize).max(1);
    let mut buf = vec![0u8; payload.len() + chunks * 18];
    let n = writer
        .write(&mut buf, header, payload)
        .unwrap_or_else(|e| panic!("writing {header:?}: {e}"));
    out.extend_from_slice(&buf[..n]);
}

fn round_trip(data: &[u8], seed: u8) {
    let mut writer = ChunkWriter::<8>::new();
    let mut wire = Vec::new();
    let mut expected: Vec<Owned> = Vec::new();
    for record in records(data) {
        match record {
            Record::ChunkSize(size) => {
                let control = Control::SetChunkSize(size);
                let mut payload = [0u8; 4];
                let len = control.encode(&mut payload).expect("4-byte Set Chunk Size");
                let header = MessageHeader {
                    csid: 2,
                    timestamp: 0,
                    length: len as u32,
                    type_id: control.type_id(),
                    stream_id: 0,
                };
                write(&mut writer, &mut wire, &header, &payload[..len]);
                writer.set_chunk_size(size).expect("1..=65536 is valid");
                expected.push((header, payload[..len].to_vec()));
            }
            Record::Message(header, payload) => {
                write(&mut writer, &mut wire, &header, payload);
                expected.push((header, payload.to_vec()));
            }
        }
    }
    let outcome = run(split_with(seed, &wire), 0);
    assert_eq!(outcome.error, None);
    assert_eq!(outcome.consumed, wire.len() as u64, "bytes left unread");
    assert_eq!(outcome.messages.len(), expected.len());
    for (i, (got, want)) in outcome.messages.iter().zip(&expected).enumerate() {
        assert_eq!(got, want, "message {i}");
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&seed, stream)) = data.split_first() else {
        return;
    };
    let mask = zerocast_core::chunk::DEFAULT_SKIP_MASK;
    let whole = run([stream], mask);
    let pieces = run(split(data), mask);
    assert_eq!(
        whole.messages, pieces.messages,
        "messages depend on the split"
    );
    assert_eq!(whole.error, pieces.error, "error depends on the split");
    // After an error the connection is closed, so what was counted before it differs with the
    // split (the failing call's bytes are never counted) and does not matter.
    if whole.error.is_none() {
        assert_eq!(
            whole.consumed, pieces.consumed,
            "consumed depends on the split"
        );
    }
    round_trip(stream, seed);
});
