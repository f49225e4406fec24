//! The core's client against its server on a virtual clock, bytes moved in random pieces.

extern crate std;

use std::vec::Vec;

use super::*;
use crate::chunk::{encode_standalone, standalone_len, ChunkReader, ChunkWriter, MessageHeader};
use crate::command::{self, Command};
use crate::message;
use crate::time::Instant;

type Server = ServerSession<16384, 8192>;
type Client = ClientSession<16384, 8192>;

/// xorshift64*: deterministic randomness for splits and sizes.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

fn client_config(role: ClientRole, digest: bool) -> ClientConfig<'static> {
    ClientConfig {
        app: "live",
        tc_url: "rtmp://127.0.0.1/live",
        stream: "audio",
        role,
        digest,
        chunk_size: 4096,
        max_message: 16384,
    }
}

/// One direction of a connection: bytes written but not yet read, delivered in random pieces.
#[derive(Default)]
struct Wire {
    bytes: Vec<u8>,
}

impl Wire {
    fn take_from(&mut self, out: &[u8], rng: &mut Rng) -> usize {
        // A socket may accept only part of what is offered.
        let n = if out.is_empty() {
            0
        } else {
            1 + rng.below(out.len())
        };
        self.bytes.extend_from_slice(&out[..n]);
        n
    }

    /// Offers up to a random number of bytes; the receiver says how many it used.
    fn offer(&self, rng: &mut Rng) -> &[u8] {
        let n = self.bytes.len().min(1 + rng.below(3000));
        &self.bytes[..n]
    }

    fn consume(&mut self, n: usize) {
        self.bytes.drain(..n);
    }
}

/// What the test "host" saw on each side.
#[derive(Default)]
struct Log {
    server_audio: Vec<(u32, Vec<u8>)>,
    server_metadata: Vec<Vec<u8>>,
    client_audio: Vec<(u32, Vec<u8>)>,
    client_events: Vec<&'static str>,
    server_events: Vec<&'static str>,
}

/// Runs both sessions until neither moves, at most `steps` times. The server side accepts every
/// play and publish.
fn run(
    server: &mut Server,
    client: &mut Client,
    now: &mut Instant,
    rng: &mut Rng,
    log: &mut Log,
    to_server: &mut Wire,
    to_client: &mut Wire,
    steps: usize,
) {
    for _ in 0..steps {
        *now = now.saturating_add_millis(1);
        let n = to_server.take_from(client.transmit(), rng);
        client.advance(n);
        let m = to_client.take_from(server.transmit(), rng);
        server.advance(m);
        let mut moved = n + m;

        let offered = to_server.offer(rng).to_vec();
        let received = server.receive(*now, &offered).expect("server receive");
        let consumed = received.consumed;
        match received.event {
            Some(Event::Connected { app }) => {
                assert_eq!(app, "live");
                log.server_events.push("connected");
            }
            Some(Event::PlayRequested { app, name }) => {
                assert_eq!((app, name), ("live", "audio"));
                log.server_events.push("play");
                server.accept_play().expect("accept play");
            }
            Some(Event::PublishRequested { app, name }) => {
                assert_eq!((app, name), ("live", "audio"));
                log.server_events.push("publish");
                server.accept_publish().expect("accept publish");
            }
            Some(Event::Audio { timestamp, payload }) => {
                log.server_audio.push((timestamp, payload.to_vec()))
            }
            Some(Event::Metadata { body }) => log.server_metadata.push(body.to_vec()),
            Some(Event::PlayStopped) => log.server_events.push("play stopped"),
            Some(Event::Unpublished) => log.server_events.push("unpublished"),
            None => {}
        }
        to_server.consume(consumed);
        moved += consumed;

        let offered = to_client.offer(rng).to_vec();
        let received = client.receive(*now, &offered).expect("client receive");
        let consumed = received.consumed;
        match received.event {
            Some(ClientEvent::Audio { timestamp, payload }) => {
                log.client_audio.push((timestamp, payload.to_vec()))
            }
            Some(ClientEvent::Connected) => log.client_events.push("connected"),
            Some(ClientEvent::Playing) => log.client_events.push("playing"),
            Some(ClientEvent::Publishing) => log.client_events.push("publishing"),
            Some(ClientEvent::Metadata { .. }) => log.client_events.push("metadata"),
            Some(ClientEvent::EndOfStream) => log.client_events.push("eos"),
            None => {}
        }
        to_client.consume(consumed);
        moved += consumed;
        if moved == 0 && to_server.bytes.is_empty() && to_client.bytes.is_empty() {
            return;
        }
    }
    panic!("sessions still busy after {steps} steps");
}

fn audio_payload(rng: &mut Rng, i: usize) -> Vec<u8> {
    // Sizes across one and several 128/1000/4096-byte chunks, and a zero-length-body edge.
    let len = 1 + rng.below(9000);
    let mut v = Vec::with_capacity(len);
    v.push(0x3F); // PCM LE, 44 kHz, 16 bit, stereo
    for k in 1..len {
        v.push((i * 31 + k * 7) as u8);
    }
    v
}

#[test]
fn publish_metadata_audio_and_chunk_size_change() {
    for (seed, digest) in [(1u64, true), (2, false), (3, true)] {
        let mut rng = Rng(seed);
        let mut now = Instant::from_millis(1_000);
        let mut server = Server::new(now, [7; 32], &ServerConfig::default());
        let mut client =
            Client::new(now, [9; 32], &client_config(ClientRole::Publish, digest)).expect("client");
        let (mut up, mut down, mut log) = (Wire::default(), Wire::default(), Log::default());
        run(
            &mut server,
            &mut client,
            &mut now,
            &mut rng,
            &mut log,
            &mut up,
            &mut down,
            20_000,
        );
        assert_eq!(log.client_events, ["connected", "publishing"]);
        assert_eq!(log.server_events, ["connected", "publish"]);
        assert!(server.is_publishing());

        let mut meta = [0u8; 256];
        let mut enc = crate::amf0::Encoder::new(&mut meta);
        enc.string("onMetaData").unwrap();
        enc.ecma_array_start(1).unwrap();
        enc.property_number("audiosamplerate", 44100.0).unwrap();
        enc.object_end().unwrap();
        let meta_len = enc.len();
        client.send_metadata(&meta[..meta_len]).unwrap();

        let mut sent = Vec::new();
        for i in 0..40 {
            if i == 20 {
                client.set_chunk_size(1000).unwrap();
            }
            let payload = audio_payload(&mut rng, i);
            let ts = (i as u32) * 23;
            client.send_audio(ts, &payload).unwrap();
            sent.push((ts, payload));
            run(
                &mut server,
                &mut client,
                &mut now,
                &mut rng,
                &mut log,
                &mut up,
                &mut down,
                20_000,
            );
        }
        assert_eq!(log.server_metadata, [meta[..meta_len].to_vec()]);
        assert_eq!(log.server_audio, sent);

        client.unpublish().unwrap();
        run(
            &mut server,
            &mut client,
            &mut now,
            &mut rng,
            &mut log,
            &mut up,
            &mut down,
            20_000,
        );
        assert_eq!(log.server_events.last(), Some(&"unpublished"));
        assert!(!server.is_publishing());
    }
}

#[test]
fn play_receives_host_media_with_extended_timestamps_and_acks() {
    let mut rng = Rng(42);
    let mut now = Instant::from_millis(0);
    let config = ServerConfig {
        window_ack_size: 10_000,
        ..ServerConfig::default()
    };
    let mut server = Server::new(now, [3; 32], &config);
    let mut client = Client::new(now, [4; 32], &client_config(ClientRole::Play, true)).unwrap();
    let (mut up, mut down, mut log) = (Wire::default(), Wire::default(), Log::default());
    run(
        &mut server,
        &mut client,
        &mut now,
        &mut rng,
        &mut log,
        &mut up,
        &mut down,
        20_000,
    );
    assert_eq!(log.client_events, ["connected", "playing"]);
    assert!(server.is_playing());

    // The host writes media beside the session, as the ring does: standalone fmt-0 messages.
    let mut expected = Vec::new();
    for i in 0..60u32 {
        let payload = audio_payload(&mut rng, i as usize);
        // Crosses the 24-bit timestamp limit: extended timestamps, repeated in fmt 3 chunks.
        let ts = 0xFF_FF00 + i * 23;
        let header = MessageHeader {
            csid: CSID_AUDIO,
            timestamp: ts,
            length: payload.len() as u32,
            type_id: message::AUDIO,
            stream_id: MEDIA_STREAM_ID,
        };
        let mut buf = std::vec![0u8; standalone_len(4096, &header)];
        let n = encode_standalone(&mut buf, 4096, &header, &payload).unwrap();
        assert_eq!(n, buf.len());
        // Session output first, then the media (the host's order).
        let m = down.take_from(server.transmit(), &mut rng);
        server.advance(m);
        if server.transmit().is_empty() {
            down.bytes.extend_from_slice(&buf);
            expected.push((ts, payload));
        }
        run(
            &mut server,
            &mut client,
            &mut now,
            &mut rng,
            &mut log,
            &mut up,
            &mut down,
            20_000,
        );
    }
    assert_eq!(log.client_audio, expected);
    // The client acknowledged the 10 000-byte window the server announced.
    assert!(
        server.peer_acknowledged() > 10_000,
        "acked {}",
        server.peer_acknowledged()
    );

    server.end_play().unwrap();
    run(
        &mut server,
        &mut client,
        &mut now,
        &mut rng,
        &mut log,
        &mut up,
        &mut down,
        20_000,
    );
    assert_eq!(log.client_events.last(), Some(&"eos"));
}

#[test]
fn silent_peer_is_pinged_then_dropped_and_a_live_one_kept() {
    let mut rng = Rng(5);
    let mut now = Instant::from_millis(0);
    let mut server = Server::new(now, [1; 32], &ServerConfig::default());
    let mut client = Client::new(now, [2; 32], &client_config(ClientRole::Play, false)).unwrap();
    let (mut up, mut down, mut log) = (Wire::default(), Wire::default(), Log::default());
    run(
        &mut server,
        &mut client,
        &mut now,
        &mut rng,
        &mut log,
        &mut up,
        &mut down,
        20_000,
    );

    // A live client answers the server's ping and stays.
    let deadline = server.poll_timeout().unwrap();
    assert!(deadline > now);
    now = deadline;
    server.handle_timeout(now).unwrap();
    assert!(!server.transmit().is_empty(), "a ping request is queued");
    run(
        &mut server,
        &mut client,
        &mut now,
        &mut rng,
        &mut log,
        &mut up,
        &mut down,
        20_000,
    );
    let deadline = server.poll_timeout().unwrap();
    assert!(
        deadline.saturating_millis_since(now) > 20_000,
        "ping answered, no early deadline"
    );

    // A silent one is pinged, then dropped.
    now = server.poll_timeout().unwrap();
    server.handle_timeout(now).unwrap();
    now = server.poll_timeout().unwrap();
    assert!(matches!(
        server.handle_timeout(now),
        Err(SessionError::IdleTimeout { .. })
    ));
}

#[test]
fn handshake_deadline_covers_the_whole_handshake() {
    let mut server = Server::new(Instant::from_millis(0), [1; 32], &ServerConfig::default());
    // Slowloris: a byte now and then does not move the deadline.
    let mut c0c1 = [0u8; 1537];
    c0c1[0] = 3;
    for t in 0..9 {
        let now = Instant::from_millis(t * 1000);
        let r = server
            .receive(now, &c0c1[t as usize..t as usize + 1])
            .unwrap();
        assert_eq!(r.consumed, 1);
        server.handle_timeout(now).unwrap();
    }
    assert_eq!(server.poll_timeout(), Some(Instant::from_millis(10_000)));
    assert_eq!(
        server.handle_timeout(Instant::from_millis(10_000)),
        Err(SessionError::HandshakeTimeout { millis: 10_000 })
    );
}

/// A connected server session and a chunk writer to talk raw RTMP to it.
fn connected_server() -> (Server, ChunkWriter<8>, Instant) {
    let mut rng = Rng(9);
    let mut now = Instant::from_millis(0);
    let mut server = Server::new(now, [1; 32], &ServerConfig::default());
    let mut client = Client::new(now, [2; 32], &client_config(ClientRole::Play, false)).unwrap();
    let (mut up, mut down, mut log) = (Wire::default(), Wire::default(), Log::default());
    run(
        &mut server,
        &mut client,
        &mut now,
        &mut rng,
        &mut log,
        &mut up,
        &mut down,
        20_000,
    );
    // The client's writer state is unknown to us: use fresh csids (10, 11) with fmt 0.
    (server, ChunkWriter::new(), now)
}

fn raw_command(writer: &mut ChunkWriter<8>, csid: u32, body: &[u8]) -> Vec<u8> {
    let header = MessageHeader {
        csid,
        timestamp: 0,
        length: body.len() as u32,
        type_id: message::COMMAND_AMF0,
        stream_id: 0,
    };
    let mut out = std::vec![0u8; body.len() + 64];
    let n = writer.write(&mut out, &header, body).unwrap();
    out.truncate(n);
    out
}

/// Decodes every command the server sent.
fn server_commands(server: &mut Server, f: &mut dyn FnMut(Command<'_>)) {
    let mut reader: ChunkReader<8, 16384> = ChunkReader::new(16384);
    let out = server.transmit().to_vec();
    server.advance(out.len());
    let mut at = 0;
    while at < out.len() {
        let (n, msg) = reader.read(&out[at..]).unwrap();
        at += n;
        if let Some(msg) = msg {
            if msg.header.type_id == message::COMMAND_AMF0 {
                f(command::parse_command(msg.payload).unwrap());
            }
        }
        assert!(n > 0);
    }
}

#[test]
fn unknown_command_gets_error_and_session_survives() {
    let (mut server, mut writer, now) = connected_server();
    let mut body = [0u8; 64];
    let mut enc = crate::amf0::Encoder::new(&mut body);
    enc.string("fooBar").unwrap();
    enc.number(9.0).unwrap();
    enc.null().unwrap();
    let len = enc.len();
    let raw = raw_command(&mut writer, 10, &body[..len]);
    let r = server.receive(now, &raw).unwrap();
    assert_eq!(r.consumed, raw.len());
    assert!(r.event.is_none());
    let mut errors = 0;
    server_commands(&mut server, &mut |c| {
        if let Command::Error { transaction_id, .. } = c {
            assert_eq!(transaction_id, 9.0);
            errors += 1;
        }
    });
    assert_eq!(errors, 1);
    assert!(server.is_playing());
}

#[test]
fn second_connect_closes_and_create_stream_flood_is_capped() {
    let (mut server, mut writer, now) = connected_server();
    // The play client created one stream; three more are allowed, then `_error`.
    let mut body = [0u8; 64];
    let len = command::encode_create_stream(&mut body, 20.0).unwrap();
    let mut results = 0;
    let mut errors = 0;
    for _ in 0..5 {
        let raw = raw_command(&mut writer, 11, &body[..len]);
        assert_eq!(server.receive(now, &raw).unwrap().consumed, raw.len());
        server_commands(&mut server, &mut |c| match c {
            Command::Result { .. } => results += 1,
            Command::Error { .. } => errors += 1,
            _ => {}
        });
    }
    assert_eq!((results, errors), (3, 2));

    let len = command::encode_connect(&mut body, 1.0, "live", "rtmp://x/live", "LNX").unwrap();
    let raw = raw_command(&mut writer, 10, &body[..len]);
    assert_eq!(
        server.receive(now, &raw).unwrap_err(),
        SessionError::DuplicateConnect
    );
}

#[test]
fn decisions_out_of_state_are_refused() {
    let mut server = Server::new(Instant::from_millis(0), [1; 32], &ServerConfig::default());
    assert_eq!(server.accept_play(), Err(SessionError::InvalidState));
    assert_eq!(server.accept_publish(), Err(SessionError::InvalidState));
    assert_eq!(
        server.refuse_play(Refusal::NotFound),
        Err(SessionError::InvalidState)
    );
    assert_eq!(
        server.refuse_publish(Refusal::BadName),
        Err(SessionError::InvalidState)
    );
}

#[test]
fn memory_of_a_session_is_printed() {
    std::println!(
        "ServerSession<16384, 8192>: {} bytes; ClientSession<16384, 8192>: {} bytes",
        core::mem::size_of::<Server>(),
        core::mem::size_of::<Client>()
    );
    // Arena + transmit buffer + handshake (~3 KiB) + small state.
    assert!(core::mem::size_of::<Server>() < 16384 + 8192 + 8192);
}
