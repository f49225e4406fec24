//! Chunk stream reader and writer: spec vectors, round trips in every split, hostile input.

use zerocast_core::chunk::{
    encode_standalone, standalone_len, ChunkError, ChunkReader, ChunkReaderIn, ChunkWriter,
    MessageHeader, DEFAULT_SKIP_MASK,
};
use zerocast_core::message::{Control, UserControl};

/// A message as owned test data.
type Owned = (MessageHeader, Vec<u8>);

/// xorshift64*: a tiny deterministic PRNG so failures reproduce.
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

fn header(csid: u32, timestamp: u32, length: u32, type_id: u8, stream_id: u32) -> MessageHeader {
    MessageHeader {
        csid,
        timestamp,
        length,
        type_id,
        stream_id,
    }
}

fn payload(seed: u64, len: usize) -> Vec<u8> {
    let mut rng = Rng(seed | 1);
    (0..len).map(|_| rng.next() as u8).collect()
}

/// Feeds `stream` to `reader` in pieces whose sizes `split` chooses, calling `read` until it
/// asks for more each time. Returns the messages and how many bytes were left unread, or the
/// first error.
fn drive<const S: usize, const A: usize>(
    reader: &mut ChunkReader<S, A>,
    stream: &[u8],
    mut split: impl FnMut() -> usize,
) -> Result<(Vec<Owned>, usize), ChunkError> {
    let mut out = Vec::new();
    let mut pending: Vec<u8> = Vec::new();
    let mut pos = 0;
    loop {
        loop {
            let (n, message) = reader.read(&pending)?;
            let done = message.is_none() && n == 0;
            if let Some(m) = message {
                assert_eq!(m.payload.len(), m.header.length as usize);
                out.push((m.header, m.payload.to_vec()));
            }
            pending.drain(..n);
            if done {
                break;
            }
        }
        if pos == stream.len() {
            return Ok((out, pending.len()));
        }
        let k = split().clamp(1, stream.len() - pos);
        pending.extend_from_slice(&stream[pos..pos + k]);
        pos += k;
    }
}

/// Feeds a stream that must be read to its last byte in pieces `split` chooses.
fn drive_all<const S: usize, const A: usize>(
    reader: &mut ChunkReader<S, A>,
    stream: &[u8],
    split: impl FnMut() -> usize,
) -> Result<Vec<Owned>, ChunkError> {
    let (messages, unread) = drive(reader, stream, split)?;
    assert_eq!(unread, 0, "bytes left unread");
    Ok(messages)
}

fn read_whole<const S: usize, const A: usize>(
    reader: &mut ChunkReader<S, A>,
    stream: &[u8],
) -> Result<Vec<Owned>, ChunkError> {
    drive_all(reader, stream, || usize::MAX)
}

/// Feeds the stream all at once, one byte at a time and in random pieces, to fresh readers
/// made by `make`; all three must agree, and every byte must be counted.
fn read_every_split<const S: usize, const A: usize>(
    make: impl Fn() -> ChunkReader<S, A>,
    stream: &[u8],
    seed: u64,
) -> Result<Vec<Owned>, ChunkError> {
    let mut whole = make();
    let expected = read_whole(&mut whole, stream)?;
    assert_eq!(whole.bytes_received(), stream.len() as u64);
    let mut bytewise = make();
    assert_eq!(drive_all(&mut bytewise, stream, || 1)?, expected);
    assert_eq!(bytewise.bytes_received(), stream.len() as u64);
    let mut rng = Rng(seed);
    let mut random = make();
    assert_eq!(
        drive_all(&mut random, stream, || 1 + rng.below(300) as usize)?,
        expected
    );
    Ok(expected)
}

// ---------------------------------------------------------------------------------------------
// Spec §5.3.2 (2012 edition; §5.3.1 in the brief's numbering), examples 1 and 2.

/// Example 1, "Sample audio messages to be sent" and "Format of each of the chunks of audio
/// messages": stream id 12345, type 8, length 32, times 1000/1020/1040/1060; chunk stream 3
/// with chunk types 0, 2, 3, 3 and chunk totals 44, 36, 33, 33 bytes.
#[test]
fn spec_example_1_audio_stream() {
    let payloads: Vec<Vec<u8>> = (0..4).map(|i| payload(i, 32)).collect();
    let mut expected = Vec::new();
    // Chunk 1: fmt 0, csid 3; timestamp 1000 = 0x0003E8, length 32, type 8, stream 12345 LE.
    expected.extend_from_slice(&[
        0x03, 0x00, 0x03, 0xE8, 0x00, 0x00, 0x20, 0x08, 0x39, 0x30, 0, 0,
    ]);
    expected.extend_from_slice(&payloads[0]);
    // Chunk 2: fmt 2, delta 20.
    expected.extend_from_slice(&[0x83, 0x00, 0x00, 0x14]);
    expected.extend_from_slice(&payloads[1]);
    // Chunks 3 and 4: fmt 3, no header.
    expected.push(0xC3);
    expected.extend_from_slice(&payloads[2]);
    expected.push(0xC3);
    expected.extend_from_slice(&payloads[3]);

    let mut writer = ChunkWriter::<4>::new();
    let mut out = [0u8; 256];
    let mut written = 0;
    let mut sizes = Vec::new();
    for (i, p) in payloads.iter().enumerate() {
        let h = header(3, 1000 + 20 * i as u32, 32, 8, 12345);
        let n = writer.write(&mut out[written..], &h, p).unwrap();
        sizes.push(n);
        written += n;
    }
    assert_eq!(sizes, [44, 36, 33, 33]);
    assert_eq!(&out[..written], &expected[..]);

    let messages = read_every_split(|| ChunkReader::<4, 1024>::new(1024), &expected, 1).unwrap();
    let got: Vec<_> = messages
        .iter()
        .map(|(h, p)| (h.timestamp, p.clone()))
        .collect();
    let want: Vec<_> = (0..4)
        .map(|i| (1000 + 20 * i as u32, payloads[i].clone()))
        .collect();
    assert_eq!(got, want);
    assert!(messages
        .iter()
        .all(|(h, _)| (h.csid, h.length, h.type_id, h.stream_id) == (3, 32, 8, 12345)));
}

/// Example 2, "Sample message to be broken to chunks": stream id 12346, type 9 (video), time
/// 1000, length 307; chunk stream 4, chunk types 0, 3, 3 with 128, 128, 51 payload bytes and
/// chunk totals 140, 129, 52.
#[test]
fn spec_example_2_message_split_into_chunks() {
    let body = payload(7, 307);
    let mut expected = vec![
        0x04, 0x00, 0x03, 0xE8, 0x00, 0x01, 0x33, 0x09, 0x3A, 0x30, 0, 0,
    ];
    expected.extend_from_slice(&body[..128]);
    assert_eq!(expected.len(), 140);
    expected.push(0xC4);
    expected.extend_from_slice(&body[128..256]);
    expected.push(0xC4);
    expected.extend_from_slice(&body[256..]);
    assert_eq!(expected.len(), 140 + 129 + 52);

    let h = header(4, 1000, 307, 9, 12346);
    let mut out = [0u8; 400];
    let n = ChunkWriter::<2>::new().write(&mut out, &h, &body).unwrap();
    assert_eq!(&out[..n], &expected[..]);
    // A first message on a chunk stream is exactly what the ring stores.
    assert_eq!(encode_standalone(&mut out, 128, &h, &body), Ok(321));
    assert_eq!(&out[..321], &expected[..]);
    assert_eq!(standalone_len(128, &h), 321);

    let make = || {
        let mut r = ChunkReader::<2, 512>::new(512);
        r.set_skip_mask(0);
        r
    };
    assert_eq!(
        read_every_split(make, &expected, 2).unwrap(),
        vec![(h, body)]
    );

    // By default video is skipped chunk by chunk: all bytes consumed, nothing returned, even
    // with an arena far smaller than the message.
    let skipping = || ChunkReader::<2, 16>::new(16);
    assert_eq!(read_every_split(skipping, &expected, 3).unwrap(), vec![]);
}

// ---------------------------------------------------------------------------------------------
// Round trips.

/// Splits one message as written by a writer into its chunks (first chunk with the full
/// header, then continuation chunks), knowing only its csid, payload length and chunk size.
fn split_chunks(bytes: &[u8], csid: u32, len: usize, chunk_size: usize) -> Vec<&[u8]> {
    let basic = match csid {
        2..=63 => 1,
        64..=319 => 2,
        _ => 3,
    };
    let fields = [11, 7, 3, 0][usize::from(bytes[0] >> 6)];
    let chunks = len.div_ceil(chunk_size).max(1);
    // total = basic + fields + ext + (chunks - 1) * (basic + ext) + len
    let ext = (bytes.len() - len - basic - fields - (chunks - 1) * basic) / chunks;
    assert!(ext == 0 || ext == 4);
    let mut out = Vec::new();
    let mut at = 0;
    for i in 0..chunks {
        let head = if i == 0 {
            basic + fields + ext
        } else {
            basic + ext
        };
        let body = chunk_size.min(len - i * chunk_size);
        out.push(&bytes[at..at + head + body]);
        at += head + body;
    }
    assert_eq!(at, bytes.len());
    out
}

/// Random messages on several csids (1-, 2- and 3-byte basic headers), random lengths, types,
/// timestamps (deltas, repeats, jumps back, extended values) and chunk size changes, written
/// by `ChunkWriter` and INTERLEAVED chunk by chunk across csids, then read in every split.
#[test]
fn round_trip_interleaved_random_messages() {
    const CSIDS: [u32; 7] = [3, 4, 5, 64, 319, 320, 65_599];
    for seed in 1..=12u64 {
        let mut rng = Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15));
        let mut writer = ChunkWriter::<8>::new();
        let mut stream = Vec::new();
        let mut expected: Vec<Owned> = Vec::new();
        let mut clock = [0u32; CSIDS.len()];
        let mut last_len = [0u32; CSIDS.len()];
        for _round in 0..6 {
            // Between rounds no message is in flight, so a chunk size change is safe.
            if rng.below(2) == 0 {
                let size = [1, 7, 128, 200, 4096, 60_000][rng.below(6) as usize];
                let mut body = [0u8; 4];
                Control::SetChunkSize(size).encode(&mut body).unwrap();
                let h = header(2, 0, 4, 1, 0);
                let mut buf = vec![0u8; 64];
                let n = writer.write(&mut buf, &h, &body).unwrap();
                stream.extend_from_slice(&buf[..n]);
                expected.push((h, body.to_vec()));
                writer.set_chunk_size(size).unwrap();
            }
            let chunk_size = writer.chunk_size() as usize;
            // One batch: up to 3 messages per csid, chunks interleaved across csids.
            let mut queues: Vec<std::collections::VecDeque<Vec<u8>>> = Vec::new();
            let mut order = Vec::new();
            for (i, &csid) in CSIDS.iter().enumerate() {
                let mut queue = std::collections::VecDeque::new();
                for _ in 0..rng.below(4) {
                    clock[i] = match rng.below(8) {
                        0 => clock[i].wrapping_sub(rng.below(5000) as u32), // backwards
                        1 => 0xFF_FFFF + rng.below(1 << 20) as u32,         // extended
                        2 => clock[i].wrapping_add(0x0100_0000),            // extended delta
                        3 => clock[i],                                      // same time
                        _ => clock[i].wrapping_add(rng.below(100) as u32),
                    };
                    let len = match rng.below(4) {
                        0 => last_len[i], // repeats → fmt 2/3
                        1 => 0,
                        _ => rng.below(3000) as u32,
                    };
                    last_len[i] = len;
                    let type_id = [8u8, 8, 9, 18, 20, 0xFF][rng.below(6) as usize];
                    let stream_id = rng.below(2) as u32;
                    let h = header(csid, clock[i], len, type_id, stream_id);
                    let body = payload(rng.next(), len as usize);
                    let mut buf = vec![0u8; standalone_len(1, &h) + 16];
                    let n = writer.write(&mut buf, &h, &body).unwrap();
                    buf.truncate(n);
                    for chunk in split_chunks(&buf, csid, len as usize, chunk_size) {
                        queue.push_back(chunk.to_vec());
                    }
                    order.push((h, body));
                }
                queues.push(queue);
            }
            // Messages complete in the order of their last chunks.
            let mut completion = Vec::new();
            let mut started = vec![0usize; CSIDS.len()];
            let mut done_chunks = vec![0usize; CSIDS.len()];
            let per_csid: Vec<Vec<&Owned>> = CSIDS
                .iter()
                .map(|&c| order.iter().filter(|(h, _)| h.csid == c).collect())
                .collect();
            while queues.iter().any(|q| !q.is_empty()) {
                let i = loop {
                    let i = rng.below(CSIDS.len() as u64) as usize;
                    if !queues[i].is_empty() {
                        break i;
                    }
                };
                stream.extend_from_slice(&queues[i].pop_front().unwrap());
                done_chunks[i] += 1;
                let m = per_csid[i][started[i]];
                let chunks = (m.0.length as usize).div_ceil(chunk_size).max(1);
                if done_chunks[i] == chunks {
                    completion.push(m.clone());
                    started[i] += 1;
                    done_chunks[i] = 0;
                }
            }
            expected.extend(completion);
        }
        let make = || {
            // Up to 7 messages of < 3000 bytes in flight: the arena fills up and compacts.
            let mut r = ChunkReader::<8, 21_000>::new(4096);
            r.set_skip_mask(0);
            r
        };
        let got = read_every_split(make, &stream, seed).unwrap();
        assert_eq!(got.len(), expected.len(), "seed {}", seed);
        assert_eq!(got, expected, "seed {}", seed);
    }
}

/// Three messages in flight at once in a 600-byte arena force a compaction; the payloads stay
/// intact and nothing is reported over budget.
#[test]
fn interleaved_messages_compact_the_arena() {
    let (a, b, c, d) = (
        payload(1, 200),
        payload(2, 200),
        payload(3, 200),
        payload(4, 300),
    );
    let mut writer = ChunkWriter::<4>::new();
    let mut enc = |h: MessageHeader, p: &[u8]| {
        let mut buf = vec![0u8; 1024];
        let n = writer.write(&mut buf, &h, p).unwrap();
        buf.truncate(n);
        split_chunks(&buf, h.csid, p.len(), 128)
            .into_iter()
            .map(|c| c.to_vec())
            .collect::<Vec<_>>()
    };
    let ca = enc(header(3, 0, 200, 8, 1), &a);
    let cb = enc(header(4, 0, 200, 8, 1), &b);
    let cc = enc(header(5, 0, 200, 8, 1), &c);
    let cd = enc(header(6, 0, 300, 8, 1), &d);
    // A starts (0..200), B starts (200..400) and ends, C starts (200..400), A ends, D needs 300
    // bytes: only compaction (C moved to 0..200) makes room at the end.
    let stream = [
        &ca[0][..],
        &cb[0],
        &cb[1],
        &cc[0],
        &ca[1],
        &cd[0],
        &cc[1],
        &cd[1],
        &cd[2],
    ]
    .concat();
    let got = read_every_split(|| ChunkReader::<4, 600>::new(600), &stream, 5).unwrap();
    let payloads: Vec<_> = got.iter().map(|(h, p)| (h.csid, p.clone())).collect();
    assert_eq!(payloads, vec![(4, b), (3, a), (5, c), (6, d)]);
}

// ---------------------------------------------------------------------------------------------
// Timestamps (protocol notes §2).

#[test]
fn fmt3_new_message_repeats_the_previous_delta() {
    let mut s = vec![0x03, 0, 0x03, 0xE8, 0, 0, 1, 8, 1, 0, 0, 0, 0xAA]; // fmt 0 ts 1000
    s.extend_from_slice(&[0xC3, 0xAB]); // fmt 3: delta = ts_field 1000 → 2000 (ffmpeg)
    s.extend_from_slice(&[0x83, 0, 0, 20, 0xAC]); // fmt 2 delta 20 → 2020
    s.extend_from_slice(&[0xC3, 0xAD]); // fmt 3 → 2040
    s.extend_from_slice(&[0x43, 0, 0, 5, 0, 0, 2, 8, 1, 2]); // fmt 1 delta 5, len 2 → 2045
    s.extend_from_slice(&[0xC3, 3, 4]); // fmt 3 → 2050
    let got = read_every_split(|| ChunkReader::<2, 64>::new(64), &s, 9).unwrap();
    let ts: Vec<u32> = got.iter().map(|(h, _)| h.timestamp).collect();
    assert_eq!(ts, [1000, 2000, 2020, 2040, 2045, 2050]);
}

#[test]
fn continuation_keeps_timestamp_and_deltas_wrap() {
    // fmt 0 at 0xFFFFFFF0 (extended), 3-byte message in chunks of 1 → continuations keep it;
    // then fmt 2 delta 0x20 wraps past 2^32 to 0x10.
    let mut s = set_chunk_size(1);
    s.extend_from_slice(&[
        0x03, 0xFF, 0xFF, 0xFF, 0, 0, 3, 8, 1, 0, 0, 0, 0xFF, 0xFF, 0xFF, 0xF0, 1,
    ]);
    s.extend_from_slice(&[0xC3, 0xFF, 0xFF, 0xFF, 0xF0, 2]); // repeated extended timestamp
    s.extend_from_slice(&[0xC3, 3]); // not repeated: payload byte 3 ≠ 0xFF → payload
    s.extend_from_slice(&[0x83, 0, 0, 0x20, 4]);
    s.extend_from_slice(&[0xC3, 5]);
    s.extend_from_slice(&[0xC3, 6]);
    let got = read_every_split(|| ChunkReader::<2, 64>::new(64), &s, 10).unwrap();
    assert_eq!(got[1], (header(3, 0xFFFF_FFF0, 3, 8, 1), vec![1, 2, 3]));
    assert_eq!(got[2].0.timestamp, 0x10);
    assert_eq!(got[2].1, vec![4, 5, 6]);
}

#[test]
fn extended_timestamps_with_and_without_type3_repeat() {
    // ffmpeg: `-output_ts_offset 16800` → 16 807 175 ms (protocol notes §2); 300-byte message.
    let ts = 16_807_175u32;
    let body = payload(11, 300);
    let h = header(4, ts, 300, 8, 1);
    let ext = ts.to_be_bytes();
    let mut repeated = vec![0x04, 0xFF, 0xFF, 0xFF, 0, 1, 0x2C, 8, 1, 0, 0, 0];
    repeated.extend_from_slice(&ext);
    repeated.extend_from_slice(&body[..128]);
    repeated.push(0xC4);
    repeated.extend_from_slice(&ext);
    repeated.extend_from_slice(&body[128..256]);
    repeated.push(0xC4);
    repeated.extend_from_slice(&ext);
    repeated.extend_from_slice(&body[256..]);
    // Writer and ring encoder repeat the extended timestamp, like Flash/ffmpeg/nginx.
    let mut out = [0u8; 512];
    assert_eq!(
        encode_standalone(&mut out, 128, &h, &body),
        Ok(repeated.len())
    );
    assert_eq!(&out[..repeated.len()], &repeated[..]);
    assert_eq!(standalone_len(128, &h), repeated.len());
    let n = ChunkWriter::<1>::new().write(&mut out, &h, &body).unwrap();
    assert_eq!(&out[..n], &repeated[..]);

    // A spec-strict writer leaves the repeats out.
    let mut strict = repeated[..16 + 128].to_vec();
    strict.push(0xC4);
    strict.extend_from_slice(&body[128..256]);
    strict.push(0xC4);
    strict.extend_from_slice(&body[256..]);
    for (i, bytes) in [repeated, strict].iter().enumerate() {
        let make = || ChunkReader::<2, 512>::new(512);
        let got = read_every_split(make, bytes, 20 + i as u64).unwrap();
        assert_eq!(got, vec![(h, body.clone())]);
    }
}

#[test]
fn extended_delta_in_fmt1_and_fmt3_new_message() {
    // ffmpeg publisher: fmt 1 with extended timestamp 16 800 000 = the DELTA (SRS bug #4356).
    let delta = 16_800_000u32;
    let d = delta.to_be_bytes();
    let mut s = vec![0x04, 0, 0, 100, 0, 0, 1, 8, 1, 0, 0, 0, 0xA0]; // ts 100
    s.extend_from_slice(&[0x44, 0xFF, 0xFF, 0xFF, 0, 0, 1, 8]);
    s.extend_from_slice(&d);
    s.push(0xA1); // ts 100 + delta
    s.push(0xC4);
    s.extend_from_slice(&d); // fmt 3 new message with the repeat → + delta
    s.push(0xA2);
    s.extend_from_slice(&[0xC4, 0xA3]); // without the repeat → + delta again
                                        // The reader peeks 4 bytes after that last header, so more input has to follow.
    s.extend_from_slice(&[0x03, 0, 0, 0, 0, 0, 1, 8, 1, 0, 0, 0, 0xB0]);
    let got = read_every_split(|| ChunkReader::<2, 64>::new(64), &s, 30).unwrap();
    let ts: Vec<u32> = got.iter().map(|(h, _)| h.timestamp).collect();
    assert_eq!(ts, [100, 100 + delta, 100 + 2 * delta, 100 + 3 * delta, 0]);
    let bodies: Vec<u8> = got.iter().map(|(_, p)| p[0]).collect();
    assert_eq!(bodies, [0xA0, 0xA1, 0xA2, 0xA3, 0xB0]);

    // The writer produces the same compression for the same messages.
    let mut writer = ChunkWriter::<1>::new();
    let mut out = [0u8; 128];
    let mut at = 0;
    for (i, b) in [0xA0u8, 0xA1, 0xA2].into_iter().enumerate() {
        let h = header(4, 100 + i as u32 * delta, 1, 8, 1);
        at += writer.write(&mut out[at..], &h, &[b]).unwrap();
    }
    // Message 2 is fmt 2 here (the writer never uses fmt 3 right after fmt 0), fmt 3 after.
    let mut want = s[..13].to_vec();
    want.extend_from_slice(&[0x84, 0xFF, 0xFF, 0xFF]);
    want.extend_from_slice(&d);
    want.push(0xA1);
    want.push(0xC4);
    want.extend_from_slice(&d);
    want.push(0xA2);
    assert_eq!(&out[..at], &want[..]);
}

// ---------------------------------------------------------------------------------------------
// Basic header forms.

#[test]
fn two_and_three_byte_basic_headers() {
    for (csid, basic) in [
        (64u32, &[0x00u8, 0x00][..]),
        (319, &[0x00, 0xFF]),
        (320, &[0x01, 0x00, 0x01]),
        (65_599, &[0x01, 0xFF, 0xFF]),
    ] {
        let h = header(csid, 5, 200, 8, 1);
        let body = payload(u64::from(csid), 200);
        let mut want = basic.to_vec();
        want.extend_from_slice(&[0, 0, 5, 0, 0, 200, 8, 1, 0, 0, 0]);
        want.extend_from_slice(&body[..128]);
        want.extend(
            basic
                .iter()
                .enumerate()
                .map(|(i, &b)| if i == 0 { b | 0xC0 } else { b }),
        );
        want.extend_from_slice(&body[128..]);
        let mut out = [0u8; 300];
        let n = ChunkWriter::<1>::new().write(&mut out, &h, &body).unwrap();
        assert_eq!(&out[..n], &want[..], "csid {}", csid);
        let got = read_every_split(|| ChunkReader::<1, 256>::new(256), &want, 40).unwrap();
        assert_eq!(got, vec![(h, body)]);
    }
    // csid 64 in the (non-minimal) 3-byte form is the same chunk stream.
    let s = [0x01, 0x00, 0x00, 0, 0, 1, 0, 0, 1, 8, 0, 0, 0, 0, 0x77];
    let got = read_whole(&mut ChunkReader::<1, 16>::new(16), &s).unwrap();
    assert_eq!(got, vec![(header(64, 1, 1, 8, 0), vec![0x77])]);
}

// ---------------------------------------------------------------------------------------------
// Writer header compression.

#[test]
fn writer_chooses_the_smallest_header() {
    let mut w = ChunkWriter::<2>::new();
    let mut out = [0u8; 64];
    let mut first = |w: &mut ChunkWriter<2>, h: MessageHeader| {
        let body = vec![0u8; h.length as usize];
        w.write(&mut out, &h, &body).unwrap();
        out[0] >> 6
    };
    assert_eq!(first(&mut w, header(3, 100, 4, 8, 1)), 0); // first use
    assert_eq!(first(&mut w, header(3, 110, 4, 8, 1)), 2); // delta 10 (after fmt 0: not 3)
    assert_eq!(first(&mut w, header(3, 120, 4, 8, 1)), 3); // everything repeats
    assert_eq!(first(&mut w, header(3, 125, 4, 8, 1)), 2); // delta changes
    assert_eq!(first(&mut w, header(3, 130, 5, 8, 1)), 1); // length changes
    assert_eq!(first(&mut w, header(3, 135, 5, 9, 1)), 1); // type changes
    assert_eq!(first(&mut w, header(3, 140, 5, 9, 1)), 3);
    assert_eq!(first(&mut w, header(3, 140, 5, 9, 2)), 0); // stream id changes
    assert_eq!(first(&mut w, header(3, 139, 5, 9, 2)), 0); // timestamp goes back
    assert_eq!(first(&mut w, header(4, 139, 5, 9, 2)), 0); // another csid: its own state
    assert_eq!(
        w.write(&mut out, &header(5, 0, 0, 8, 1), &[]),
        Err(ChunkError::TooManyChunkStreams { csid: 5 })
    );
}

#[test]
fn writer_rejects_bad_input_and_remembers_nothing_on_error() {
    let mut w = ChunkWriter::<2>::new();
    let body = [1u8; 200];
    let h = header(3, 0, 200, 8, 1);
    let mut small = [0u8; 100];
    assert_eq!(
        w.write(&mut small, &h, &body),
        Err(ChunkError::BufferFull {
            needed: 12 + 128 + 1 + 72,
            available: 100
        })
    );
    // Still a first message: fmt 0.
    let mut out = [0u8; 300];
    assert_eq!(w.write(&mut out, &h, &body), Ok(213));
    assert_eq!(out[0], 0x03);
    for csid in [0, 1, 65_600] {
        assert_eq!(
            w.write(&mut out, &header(csid, 0, 0, 8, 1), &[]),
            Err(ChunkError::InvalidCsid { csid })
        );
    }
    assert_eq!(
        w.write(&mut out, &header(3, 0, 5, 8, 1), &[0; 4]),
        Err(ChunkError::PayloadLength {
            header: 5,
            payload: 4
        })
    );
    for size in [0, 0x8000_0000, u32::MAX] {
        assert_eq!(
            w.set_chunk_size(size),
            Err(ChunkError::InvalidChunkSize { size })
        );
    }
    assert_eq!(w.chunk_size(), 128);
    assert_eq!(w.set_chunk_size(0x7FFF_FFFF), Ok(()));
    assert_eq!(
        encode_standalone(&mut out, 0, &h, &body),
        Err(ChunkError::InvalidChunkSize { size: 0 })
    );
    let big = vec![0u8; 0x100_0000];
    assert_eq!(
        encode_standalone(&mut out, 128, &header(3, 0, 0x100_0000, 8, 1), &big),
        Err(ChunkError::MessageTooLarge {
            len: 0x100_0000,
            limit: 0xFF_FFFF
        })
    );
}

#[test]
fn standalone_len_matches_encoding() {
    let mut out = vec![0u8; 9000];
    for (len, chunk_size, csid, ts) in [
        (0u32, 128u32, 2u32, 0u32),
        (1, 1, 63, 0xFF_FFFE),
        (128, 128, 64, 0xFF_FFFF),
        (129, 128, 320, 0xFFFF_FFFF),
        (4097, 4096, 6, 16_807_175),
        (3000, 7, 65_599, 5),
    ] {
        let h = header(csid, ts, len, 8, 1);
        let body = payload(u64::from(len), len as usize);
        let n = encode_standalone(&mut out, chunk_size, &h, &body).unwrap();
        assert_eq!(n, standalone_len(chunk_size, &h), "{:?}", h);
        // And it reads back, starting a fresh reader at this message.
        let mut r = ChunkReader::<2, 8192>::new(8192);
        let mut stream = Vec::new();
        if chunk_size != 128 {
            let mut set = [0u8; 16];
            let set_header = header(2, 0, 4, 1, 0);
            let n = encode_standalone(&mut set, 128, &set_header, &chunk_size.to_be_bytes());
            stream.extend_from_slice(&set[..n.unwrap()]);
        }
        stream.extend_from_slice(&out[..n]);
        let got = read_whole(&mut r, &stream).unwrap();
        assert_eq!(got.last(), Some(&(h, body)));
    }
}

// ---------------------------------------------------------------------------------------------
// Hostile input, protocol notes §5.

fn set_chunk_size(size: u32) -> Vec<u8> {
    let mut s = vec![0x02, 0, 0, 0, 0, 0, 4, 1, 0, 0, 0, 0];
    s.extend_from_slice(&size.to_be_bytes());
    s
}

#[test]
fn hostile_5_6_set_chunk_size_zero_msb_or_above_cap() {
    for size in [0, 0x8000_0000, 0xFFFF_FFFF] {
        let mut r = ChunkReader::<2, 64>::new(64);
        assert_eq!(
            read_whole(&mut r, &set_chunk_size(size)),
            Err(ChunkError::InvalidChunkSize { size })
        );
    }
    let mut r = ChunkReader::<2, 64>::new(64);
    r.set_max_chunk_size(65_536);
    assert_eq!(
        read_whole(&mut r, &set_chunk_size(65_537)),
        Err(ChunkError::InvalidChunkSize { size: 65_537 })
    );
    // A short Set Chunk Size payload is a typed error too.
    let short = [0x02, 0, 0, 0, 0, 0, 2, 1, 0, 0, 0, 0, 0, 1];
    assert!(matches!(
        read_whole(&mut ChunkReader::<2, 64>::new(64), &short),
        Err(ChunkError::Control(_))
    ));
    // The largest valid size is accepted and the reader streams a big chunk into the arena.
    let mut s = set_chunk_size(0x7FFF_FFFF);
    s.extend_from_slice(&[0x03, 0, 0, 0, 0, 0x03, 0xE8, 8, 1, 0, 0, 0]);
    s.extend_from_slice(&payload(3, 1000));
    let got = read_every_split(|| ChunkReader::<2, 1024>::new(1024), &s, 50).unwrap();
    assert_eq!(got[1].1, payload(3, 1000));
}

#[test]
fn hostile_7_huge_message_refused_before_buffering_but_skipped_video_streams() {
    let mut r = ChunkReader::<2, 4096>::new(1000);
    let s = [0x03, 0, 0, 0, 0xFF, 0xFF, 0xFF, 8, 1, 0, 0, 0];
    assert_eq!(
        r.read(&s),
        Err(ChunkError::MessageTooLarge {
            len: 0xFF_FFFF,
            limit: 1000
        })
    );
    assert_eq!(r.bytes_received(), 0);
    // max_message is clamped to the arena.
    let mut r = ChunkReader::<2, 64>::new(1_000_000);
    assert_eq!(
        r.read(&[0x03, 0, 0, 0, 0, 0, 65, 8, 1, 0, 0, 0]),
        Err(ChunkError::MessageTooLarge { len: 65, limit: 64 })
    );

    // A 16 MB video message at the largest chunk size: skipped without the limit or the arena.
    let mut r = ChunkReader::<3, 64>::new(64);
    let mut s = set_chunk_size(0x7FFF_FFFF);
    s.extend_from_slice(&[0x04, 0, 0, 0, 0xFF, 0xFF, 0xFF, 9, 1, 0, 0, 0]);
    assert_eq!(read_whole(&mut r, &s).unwrap().len(), 1);
    let zeros = [0u8; 65_536];
    let mut left = 0xFF_FFFFusize;
    while left > 0 {
        let (n, m) = r.read(&zeros[..left.min(zeros.len())]).unwrap();
        assert!(m.is_none());
        assert!(n > 0);
        left -= n;
    }
    // The stream is still in step: an audio message follows.
    let (n, m) = r
        .read(&[0x03, 0, 0, 1, 0, 0, 1, 8, 1, 0, 0, 0, 0x42])
        .unwrap();
    assert_eq!((n, m.map(|m| m.payload.to_vec())), (13, Some(vec![0x42])));
    assert_eq!(r.bytes_received(), 16 + 12 + 0xFF_FFFF + 13);
}

#[test]
fn hostile_8_csid_65599_and_too_many_chunk_streams() {
    let mut s = Vec::new();
    for csid in [3u32, 65_599, 64] {
        let mut w = ChunkWriter::<1>::new();
        let mut out = [0u8; 32];
        let n = w.write(&mut out, &header(csid, 0, 1, 8, 1), &[1]).unwrap();
        s.extend_from_slice(&out[..n]);
    }
    assert_eq!(
        read_whole(&mut ChunkReader::<3, 16>::new(16), &s)
            .unwrap()
            .len(),
        3
    );
    assert_eq!(
        read_whole(&mut ChunkReader::<2, 16>::new(16), &s),
        Err(ChunkError::TooManyChunkStreams { csid: 64 })
    );
}

#[test]
fn hostile_9_fmt_1_2_3_first_on_a_chunk_stream() {
    for (fmt, first) in [(1u8, 0x45u8), (2, 0x85), (3, 0xC5)] {
        let s = [first, 0, 0, 0, 0, 0, 1, 8, 0];
        let mut r = ChunkReader::<2, 16>::new(16);
        assert_eq!(
            r.read(&s[..1]),
            Err(ChunkError::NoPreviousHeader { csid: 5, fmt })
        );
    }
}

#[test]
fn hostile_10_length_or_type_change_mid_message() {
    let mut s = vec![0x03, 0, 0, 0, 0, 1, 0, 8, 1, 0, 0, 0]; // 256-byte audio message
    s.extend_from_slice(&[0; 128]);
    let mut changed_len = s.clone();
    changed_len.extend_from_slice(&[0x43, 0, 0, 0, 0, 2, 0, 8]); // fmt 1: length 512
    let mut changed_type = s.clone();
    changed_type.extend_from_slice(&[0x43, 0, 0, 0, 0, 1, 0, 9]); // fmt 1: type video
    for bytes in [changed_len, changed_type] {
        assert_eq!(
            read_whole(&mut ChunkReader::<2, 512>::new(512), &bytes),
            Err(ChunkError::HeaderChangedMidMessage { csid: 3 })
        );
    }
    // Same length and type on a fmt 2 header mid-message: continues (ffmpeg does the same).
    s.extend_from_slice(&[0x83, 0, 0, 7]);
    s.extend_from_slice(&[1; 128]);
    let got = read_every_split(|| ChunkReader::<2, 512>::new(512), &s, 60).unwrap();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].0.timestamp, 7);
}

#[test]
fn hostile_11_partial_messages_on_many_chunk_streams() {
    // Each opens a 1000-byte message and sends one 128-byte chunk; 3 fit in 3000 bytes.
    let mut s = Vec::new();
    for csid in 3..7u8 {
        s.extend_from_slice(&[csid, 0, 0, 0, 0, 0x03, 0xE8, 8, 1, 0, 0, 0]);
        s.extend_from_slice(&[0; 128]);
    }
    assert_eq!(
        read_whole(&mut ChunkReader::<8, 3000>::new(3000), &s),
        Err(ChunkError::ReassemblyBudgetExceeded {
            needed: 1000,
            available: 0
        })
    );
}

#[test]
fn hostile_12_zero_length_messages_and_timestamps_backwards() {
    let mut s = vec![0x03, 0, 0, 10, 0, 0, 0, 8, 1, 0, 0, 0]; // 0-length, ts 10
    s.extend_from_slice(&[0x83, 0, 0, 5]); // fmt 2 → 15
    s.extend(std::iter::repeat(0xC3).take(1000)); // 1000 × fmt 3 → +5 each
    s.extend_from_slice(&[0x03, 0, 0, 1, 0, 0, 0, 8, 1, 0, 0, 0]); // back to 1
    let got = read_every_split(|| ChunkReader::<2, 0>::new(0), &s, 70).unwrap();
    assert_eq!(got.len(), 1003);
    assert!(got.iter().all(|(h, p)| h.length == 0 && p.is_empty()));
    assert_eq!(got[1001].0.timestamp, 15 + 1000 * 5);
    assert_eq!(got[1002].0.timestamp, 1);
}

#[test]
fn hostile_23_unknown_types_and_abort() {
    let mut s = Vec::new();
    for type_id in [0xFFu8, 22, 19, 16, 17] {
        s.extend_from_slice(&[0x05, 0, 0, 0, 0, 0, 2, type_id, 1, 0, 0, 0, 1, 2]);
    }
    // Abort for an idle csid (7) and an unknown one (9): ignored.
    let abort = |csid: u8| [0x02, 0, 0, 0, 0, 0, 4, 2, 0, 0, 0, 0, 0, 0, 0, csid];
    s.extend_from_slice(&abort(5));
    s.extend_from_slice(&abort(9));
    // A 300-byte message on csid 4 is aborted after one chunk, then csid 4 starts a new
    // message with fmt 3 (same header, delta from the fmt 0 field).
    s.extend_from_slice(&[0x04, 0, 0, 1, 0, 1, 0x2C, 8, 1, 0, 0, 0]);
    s.extend_from_slice(&[0xEE; 128]);
    s.extend_from_slice(&abort(4));
    s.push(0xC4);
    s.extend_from_slice(&payload(80, 128));
    s.push(0xC4);
    s.extend_from_slice(&payload(81, 128));
    s.push(0xC4);
    s.extend_from_slice(&payload(82, 44));
    let got = read_every_split(|| ChunkReader::<4, 512>::new(512), &s, 80).unwrap();
    let types: Vec<u8> = got.iter().map(|(h, _)| h.type_id).collect();
    assert_eq!(types, [0xFF, 22, 19, 16, 17, 2, 2, 2, 8]);
    let last = got.last().unwrap();
    assert_eq!(last.0.timestamp, 2);
    assert_eq!(
        last.1,
        [payload(80, 128), payload(81, 128), payload(82, 44)].concat()
    );
}

#[test]
fn hostile_random_bytes_and_mutations_never_panic() {
    let mut rng = Rng(0xDEAD_BEEF);
    // A valid stream to mutate.
    let mut valid = set_chunk_size(64);
    let mut w = ChunkWriter::<4>::new();
    w.set_chunk_size(64).unwrap();
    for i in 0..40u32 {
        let h = header(3 + i % 3, i * 23, 50 + i * 7, [8, 20, 9][i as usize % 3], 1);
        let mut out = vec![0u8; 1024];
        let n = w
            .write(&mut out, &h, &payload(u64::from(i), h.length as usize))
            .unwrap();
        valid.extend_from_slice(&out[..n]);
    }
    for round in 0..400 {
        let input: Vec<u8> = if round % 2 == 0 {
            (0..rng.below(4000)).map(|_| rng.next() as u8).collect()
        } else {
            let mut m = valid.clone();
            for _ in 0..1 + rng.below(6) {
                let at = rng.below(m.len() as u64) as usize;
                m[at] = rng.next() as u8;
            }
            m
        };
        let mut r = ChunkReader::<4, 2048>::new(1500);
        r.set_skip_mask(if round % 3 == 0 { 0 } else { DEFAULT_SKIP_MASK });
        let mut rng2 = Rng(round + 1);
        // Ok or a typed error; `drive` bounds itself (every read consumes or asks for more).
        let _ = drive(&mut r, &input, || 1 + rng2.below(200) as usize);
        assert!(r.bytes_received() <= input.len() as u64);
    }
}

#[test]
fn user_control_messages_through_the_reader() {
    // nginx → ffmpeg player: StreamBegin(1) on csid 2 (protocol notes §2).
    let s = [0x02, 0, 0, 0, 0, 0, 6, 4, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1];
    let got = read_whole(&mut ChunkReader::<1, 16>::new(16), &s).unwrap();
    assert_eq!(
        zerocast_core::message::parse_control(got[0].0.type_id, &got[0].1),
        Ok(Some(Control::User(UserControl::StreamBegin(1))))
    );
}

#[test]
fn a_message_in_flight_moves_into_a_larger_arena() {
    let body = payload(9, 1000);
    let h = header(6, 40, 1000, 8, 1);
    let mut wire = vec![0u8; standalone_len(128, &h)];
    let n = encode_standalone(&mut wire, 128, &h, &body).unwrap();
    // A 2000-byte message does not fit the small arena at all; the 1000-byte one does, and is
    // half read when the arena is replaced.
    let mut reader: ChunkReaderIn<4, Vec<u8>> = ChunkReaderIn::with_arena(vec![0; 1024], 4096);
    let half = n / 2;
    let mut at = 0;
    while at < half {
        let (used, message) = reader.read(&wire[at..half]).unwrap();
        assert!(message.is_none());
        if used == 0 {
            break;
        }
        at += used;
    }
    assert_eq!(
        reader.replace_arena(vec![0; 10], 4096).unwrap_err().len(),
        10
    );
    let old = reader.replace_arena(vec![0; 4096], 4096).unwrap();
    assert_eq!((old.len(), reader.arena_len()), (1024, 4096));
    let mut got = None;
    while at < n {
        let (used, message) = reader.read(&wire[at..n]).unwrap();
        if let Some(m) = message {
            got = Some((m.header, m.payload.to_vec()));
        }
        at += used;
    }
    assert_eq!(got, Some((h, body)));
    // The larger arena takes a message the small one could not.
    let big = header(6, 60, 3000, 8, 1);
    let body = payload(10, 3000);
    let mut wire = vec![0u8; standalone_len(128, &big)];
    let n = encode_standalone(&mut wire, 128, &big, &body).unwrap();
    let mut at = 0;
    let mut got = None;
    while at < n {
        let (used, message) = reader.read(&wire[at..n]).unwrap();
        if let Some(m) = message {
            got = Some(m.payload.len());
        }
        at += used;
    }
    assert_eq!(got, Some(3000));
}
