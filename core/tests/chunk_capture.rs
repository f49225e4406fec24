//! The chunk reader on real streams recorded from ffmpeg 5.1 and nginx-rtmp 1.2.2
//! (`tests/vectors/chunk/README.md`; reproduced by `capture.py`).

use zerocast_core::chunk::{ChunkReader, MessageHeader};
use zerocast_core::message::{
    parse_control, Control, UserControl, AUDIO, COMMAND_AMF0, DATA_AMF0, LIMIT_DYNAMIC,
    SET_CHUNK_SIZE,
};

/// C0+C1+C2 (client side) or S0+S1+S2 (server side): 1 + 1536 + 1536 bytes (spec §5.2).
const HANDSHAKE: usize = 1 + 1536 + 1536;

type Owned = (MessageHeader, Vec<u8>);

fn capture(name: &str) -> Vec<u8> {
    let path = format!(
        "{}/tests/vectors/chunk/{}",
        env!("CARGO_MANIFEST_DIR"),
        name
    );
    let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {}", path, e));
    assert!(bytes.len() < 600 * 1024, "{} is not small", name);
    bytes
}

/// Reads every message after the handshake, feeding pieces of 1..=1500 bytes (TCP-like, from a
/// fixed xorshift sequence) and checks it agrees with reading everything at once. Returns the
/// messages and the reader's final chunk size.
fn read_capture(name: &str) -> (Vec<Owned>, u32) {
    let bytes = capture(name);
    let stream = &bytes[HANDSHAKE..];
    let mut results = Vec::new();
    for pieces in [false, true] {
        let mut reader = ChunkReader::<8, 65_536>::new(65_536);
        let mut rng = 0x1234_5678_9ABC_DEF1u64;
        let mut messages = Vec::new();
        let mut pending: Vec<u8> = Vec::new();
        let mut pos = 0;
        while pos < stream.len() {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            let k = if pieces {
                1 + (rng % 1500) as usize
            } else {
                stream.len()
            };
            let k = k.min(stream.len() - pos);
            pending.extend_from_slice(&stream[pos..pos + k]);
            pos += k;
            loop {
                let (n, m) = reader.read(&pending).unwrap();
                let done = n == 0 && m.is_none();
                if let Some(m) = m {
                    messages.push((m.header, m.payload.to_vec()));
                }
                pending.drain(..n);
                if done {
                    break;
                }
            }
        }
        assert!(pending.is_empty(), "{}: capture ends inside a chunk", name);
        assert_eq!(reader.bytes_received(), stream.len() as u64);
        results.push((messages, reader.chunk_size()));
    }
    let second = results.pop().unwrap();
    let first = results.pop().unwrap();
    assert_eq!(first, second, "{}: result depends on the split", name);
    first
}

/// The name of an AMF0 command or data message: its first value, an AMF0 string (marker 2,
/// u16 length, UTF-8; AMF0 spec §2.4).
fn amf0_name(payload: &[u8]) -> &str {
    assert_eq!(payload[0], 2, "first AMF0 value is not a string");
    let len = usize::from(u16::from_be_bytes([payload[1], payload[2]]));
    std::str::from_utf8(&payload[3..3 + len]).unwrap()
}

fn names(messages: &[Owned], type_id: u8) -> Vec<&str> {
    messages
        .iter()
        .filter(|(h, _)| h.type_id == type_id)
        .map(|(_, p)| amf0_name(p))
        .collect()
}

fn audio(messages: &[Owned]) -> Vec<&Owned> {
    messages
        .iter()
        .filter(|(h, _)| h.type_id == AUDIO)
        .collect()
}

/// Audio timestamps never go back, and rise over the stream.
fn assert_monotonic(audio: &[&Owned]) {
    assert!(audio
        .windows(2)
        .all(|w| w[0].0.timestamp <= w[1].0.timestamp));
    assert!(audio.last().unwrap().0.timestamp > audio[0].0.timestamp);
}

/// What ffmpeg 5.1 sends as a publisher (protocol notes §2): connect on csid 3 in 128-byte
/// chunks, the Set Chunk Size 4096 echo, releaseStream, FCPublish, createStream, publish, then
/// @setDataFrame and audio on csid 4.
fn check_publisher(messages: &[Owned], chunk_size: u32) {
    let commands = names(messages, COMMAND_AMF0);
    assert_eq!(
        commands,
        [
            "connect",
            "releaseStream",
            "FCPublish",
            "createStream",
            "publish",
            "FCUnpublish",
            "deleteStream"
        ]
    );
    let connect = &messages[0];
    assert_eq!((connect.0.csid, connect.0.stream_id), (3, 0));
    assert!(
        connect.1.len() > 128,
        "connect spans several 128-byte chunks"
    );
    // The echo comes before releaseStream and switches the reader to 4096.
    let echo = messages
        .iter()
        .position(|(h, _)| h.type_id == SET_CHUNK_SIZE)
        .unwrap();
    assert_eq!(
        parse_control(SET_CHUNK_SIZE, &messages[echo].1),
        Ok(Some(Control::SetChunkSize(4096)))
    );
    let release = messages
        .iter()
        .position(|(h, p)| h.type_id == COMMAND_AMF0 && amf0_name(p) == "releaseStream")
        .unwrap();
    assert!(echo < release);
    assert_eq!(chunk_size, 4096);
    let publish = messages
        .iter()
        .find(|(h, p)| h.type_id == COMMAND_AMF0 && amf0_name(p) == "publish")
        .unwrap();
    assert_eq!((publish.0.csid, publish.0.stream_id), (8, 1));
    assert_eq!(names(messages, DATA_AMF0), ["@setDataFrame"]);
    let data = messages
        .iter()
        .find(|(h, _)| h.type_id == DATA_AMF0)
        .unwrap();
    assert_eq!(amf0_name(&data.1[16..]), "onMetaData");
    let audio = audio(messages);
    assert!(audio.iter().all(|(h, _)| (h.csid, h.stream_id) == (4, 1)));
    assert_monotonic(&audio);
}

#[test]
fn ffmpeg_pcm_publisher() {
    let (messages, chunk_size) = read_capture("publish_pcm_c2s.bin");
    check_publisher(&messages, chunk_size);
    let audio = audio(&messages);
    // FLV tag header 0x3F: PCM LE (3), 44 kHz, 16 bit, stereo (FLV spec §E.4.2.1).
    assert!(audio.iter().all(|(_, p)| p[0] == 0x3F));
    // `sine=d=2` at 44100 Hz stereo s16: exactly 2 × 44100 × 4 bytes of PCM, sent as full
    // 1024-sample frames (4096 bytes, so 4097-byte messages over 2 chunks) plus one short one.
    let pcm: usize = audio.iter().map(|(_, p)| p.len() - 1).sum();
    assert_eq!(pcm, 2 * 44_100 * 4);
    assert_eq!(audio.len(), (2 * 44_100usize).div_ceil(1024));
    assert!(audio
        .windows(2)
        .all(|w| w[0].0.timestamp < w[1].0.timestamp));
}

#[test]
fn ffmpeg_aac_publisher() {
    let (messages, chunk_size) = read_capture("publish_aac_c2s.bin");
    check_publisher(&messages, chunk_size);
    let audio = audio(&messages);
    // AF 00 + AudioSpecificConfig first, then AF 01 + one raw frame per message (§3).
    assert_eq!(&audio[0].1[..2], &[0xAF, 0x00]);
    assert!(audio[1..].iter().all(|(_, p)| p[..2] == [0xAF, 0x01]));
    // 88 200 samples in 1024-sample AAC frames, plus the encoder's one frame of priming
    // (ffmpeg's aac encoder: initial_padding 1024).
    assert_eq!(audio.len() - 1, (2 * 44_100usize + 1024).div_ceil(1024));
}

/// What nginx-rtmp sends a player (protocol notes §2): Window Ack Size and Set Peer Bandwidth
/// 5 000 000, Set Chunk Size 4096, command results, StreamBegin, onStatus, then the publisher's
/// audio with nginx's own header compression (fmt 1 for each audio message, fmt 3 for the
/// continuations of 8193-byte messages).
#[test]
fn nginx_to_ffmpeg_player() {
    let (messages, chunk_size) = read_capture("play_s2c.bin");
    assert_eq!(chunk_size, 4096);
    let controls: Vec<Control> = messages
        .iter()
        .filter_map(|(h, p)| parse_control(h.type_id, p).unwrap())
        .collect();
    assert_eq!(
        controls[..3],
        [
            Control::WindowAckSize(5_000_000),
            Control::SetPeerBandwidth {
                size: 5_000_000,
                limit: LIMIT_DYNAMIC
            },
            Control::SetChunkSize(4096),
        ]
    );
    assert!(controls.contains(&Control::User(UserControl::StreamBegin(1))));
    let commands = names(&messages, COMMAND_AMF0);
    assert_eq!(commands[0], "_result");
    assert!(commands.contains(&"onStatus"));
    assert_eq!(
        names(&messages, DATA_AMF0),
        ["|RtmpSampleAccess", "onMetaData"]
    );
    let audio = audio(&messages);
    // PCM LE, 11 kHz, 16 bit, stereo: 0x37; 2048-sample frames: 1 + 2048 × 4 bytes, three
    // chunks each at 4096 (nginx: fmt 1 first chunk, fmt 3 continuations).
    assert!(audio.iter().all(|(_, p)| p[0] == 0x37));
    assert!(audio
        .iter()
        .all(|(h, _)| (h.csid, h.stream_id, h.length) == (6, 1, 8193)));
    assert_monotonic(&audio);
    assert!(audio
        .windows(2)
        .all(|w| w[1].0.timestamp - w[0].0.timestamp == 185
            || w[1].0.timestamp - w[0].0.timestamp == 186));
    // The player read at least its 2 s of output: 2 × 11025 samples in 2048-sample frames.
    assert!(
        audio.len() >= (2 * 11_025usize).div_ceil(2048),
        "{}",
        audio.len()
    );
}
