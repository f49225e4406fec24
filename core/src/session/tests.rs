//! The core's client against its server on a virtual clock, bytes moved in random pieces.

extern crate std;

use std::vec::Vec;

use super::*;
use crate::chunk::{encode_standalone, standalone_len, ChunkReader, ChunkWriter, MessageHeader};
use crate::command::{self, Command};
use crate::message::{self, Control, UserControl};
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
        idle_timeout_ms: 60_000,
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
    server_output: Vec<u8>,
}

/// A server and a client session joined by two wires, on a virtual clock.
struct Pair {
    server: Server,
    client: Client,
    now: Instant,
    rng: Rng,
    log: Log,
    up: Wire,
    down: Wire,
}

impl Pair {
    fn new(seed: u64, config: &ServerConfig, role: ClientRole, digest: bool) -> Self {
        let now = Instant::from_millis(1_000);
        Self {
            server: Server::new(now, [7; 32], config),
            client: Client::new(now, [9; 32], &client_config(role, digest)).expect("client"),
            now,
            rng: Rng(seed),
            log: Log::default(),
            up: Wire::default(),
            down: Wire::default(),
        }
    }

    /// Runs both sessions until neither moves (bounded in steps). The server side accepts every
    /// play and publish.
    fn run(&mut self) {
        let Self {
            server,
            client,
            now,
            rng,
            log,
            up: to_server,
            down: to_client,
        } = self;
        for _ in 0..20_000 {
            *now = now.saturating_add_millis(1);
            let n = to_server.take_from(client.transmit(), rng);
            client.advance(n);
            let m = to_client.take_from(server.transmit(), rng);
            log.server_output.extend_from_slice(&server.transmit()[..m]);
            server.advance(m);
            let mut moved = n + m;

            let offered = to_server.offer(rng).to_vec();
            let received = server.receive(*now, &offered).expect("server receive");
            let consumed = received.consumed;
            match received.event {
                Some(Event::Connected { app, .. }) => {
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
        panic!("sessions still busy after 20 000 steps");
    }
}

fn audio_payload(rng: &mut Rng, i: usize) -> Vec<u8> {
    // Sizes across one and several 128/1000/4096-byte chunks (the client's 8 KiB transmit
    // buffer holds one whole message).
    let len = 1 + rng.below(6000);
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
        let mut p = Pair::new(seed, &ServerConfig::default(), ClientRole::Publish, digest);
        p.run();
        assert_eq!(p.log.client_events, ["connected", "publishing"]);
        assert_eq!(p.log.server_events, ["connected", "publish"]);
        assert!(p.server.is_publishing());

        let mut meta = [0u8; 256];
        let mut enc = crate::amf0::Encoder::new(&mut meta);
        enc.string("onMetaData").unwrap();
        enc.ecma_array_start(1).unwrap();
        enc.property_number("audiosamplerate", 44100.0).unwrap();
        enc.object_end().unwrap();
        let meta_len = enc.len();
        p.client.send_metadata(&meta[..meta_len]).unwrap();

        let mut sent = Vec::new();
        for i in 0..40 {
            if i == 20 {
                p.client.set_chunk_size(1000).unwrap();
            }
            let payload = audio_payload(&mut p.rng, i);
            let ts = (i as u32) * 23;
            p.client.send_audio(ts, &payload).unwrap();
            sent.push((ts, payload));
            p.run();
        }
        assert_eq!(p.log.server_metadata, [meta[..meta_len].to_vec()]);
        assert_eq!(p.log.server_audio, sent);

        p.client.unpublish().unwrap();
        p.run();
        assert_eq!(p.log.server_events.last(), Some(&"unpublished"));
        assert!(!p.server.is_publishing());
    }
}

#[test]
fn play_receives_host_media_with_extended_timestamps_and_acks() {
    let config = ServerConfig {
        window_ack_size: 10_000,
        ..ServerConfig::default()
    };
    let mut p = Pair::new(42, &config, ClientRole::Play, true);
    p.run();
    assert_eq!(p.log.client_events, ["connected", "playing"]);
    assert!(p.server.is_playing());

    // The host writes media beside the session, as the ring does: standalone fmt-0 messages.
    let mut expected = Vec::new();
    for i in 0..60u32 {
        let payload = audio_payload(&mut p.rng, i as usize);
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
        let m = p.down.take_from(p.server.transmit(), &mut p.rng);
        p.server.advance(m);
        if p.server.transmit().is_empty() {
            p.down.bytes.extend_from_slice(&buf);
            expected.push((ts, payload));
        }
        p.run();
    }
    assert_eq!(p.log.client_audio, expected);
    // The client acknowledged the 10 000-byte window the server announced.
    assert!(
        p.server.peer_acknowledged() > 10_000,
        "acked {}",
        p.server.peer_acknowledged()
    );

    p.server.end_play().unwrap();
    p.run();
    assert_eq!(p.log.client_events.last(), Some(&"eos"));
}

#[test]
fn silent_peer_is_pinged_then_dropped_and_a_live_one_kept() {
    let mut p = Pair::new(5, &ServerConfig::default(), ClientRole::Play, false);
    p.run();

    // A live client answers the server's ping and stays.
    let deadline = p.server.poll_timeout().unwrap();
    assert!(deadline > p.now);
    p.now = deadline;
    p.server.handle_timeout(p.now).unwrap();
    assert!(!p.server.transmit().is_empty(), "a ping request is queued");
    p.run();
    let deadline = p.server.poll_timeout().unwrap();
    assert!(
        deadline.saturating_millis_since(p.now) > 20_000,
        "ping answered, no early deadline"
    );

    // A silent one is pinged, then dropped.
    p.now = p.server.poll_timeout().unwrap();
    p.server.handle_timeout(p.now).unwrap();
    p.now = p.server.poll_timeout().unwrap();
    assert!(matches!(
        p.server.handle_timeout(p.now),
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

std::thread_local! {
    /// Handshakes held by [`Held`] that are still alive on this thread.
    static HELD: core::cell::Cell<usize> = const { core::cell::Cell::new(0) };
}

/// Handshake storage that counts how many are alive, as a host's `Box` would free them.
struct Held(crate::handshake::ServerHandshake);

impl From<crate::handshake::ServerHandshake> for Held {
    fn from(h: crate::handshake::ServerHandshake) -> Self {
        HELD.with(|n| n.set(n.get() + 1));
        Self(h)
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        HELD.with(|n| n.set(n.get() - 1));
    }
}

impl core::borrow::Borrow<crate::handshake::ServerHandshake> for Held {
    fn borrow(&self) -> &crate::handshake::ServerHandshake {
        &self.0
    }
}

impl core::borrow::BorrowMut<crate::handshake::ServerHandshake> for Held {
    fn borrow_mut(&mut self) -> &mut crate::handshake::ServerHandshake {
        &mut self.0
    }
}

#[test]
fn handshake_storage_is_dropped_once_the_reply_is_sent_and_c2_in() {
    let now = Instant::from_millis(0);
    let mut server: ServerSessionIn<[u8; 2048], 2048, Held> =
        ServerSessionIn::with_arena([0; 2048], now, [1; 32], &ServerConfig::default());
    assert_eq!(HELD.with(|n| n.get()), 1);
    let mut c0c1 = [7u8; 1537];
    c0c1[0] = 3;
    assert_eq!(server.receive(now, &c0c1).unwrap().consumed, 1537);
    // C2 arrives before the reply is read: the reply is still needed.
    assert_eq!(server.receive(now, &[9u8; 1536]).unwrap().consumed, 1536);
    let reply = server.transmit().len();
    assert_eq!(reply, 3073);
    server.advance(reply - 1);
    assert_eq!(HELD.with(|n| n.get()), 1);
    assert!(server.holds_handshake());
    server.advance(1);
    assert_eq!(HELD.with(|n| n.get()), 0);
    assert!(!server.holds_handshake());
    assert_eq!(server.arena_len(), 2048);
    // The established session carries on without it: a connect is answered.
    let mut writer = ChunkWriter::<8>::new();
    let mut body = [0u8; 512];
    let len = command::encode_connect(&mut body, 1.0, "live", "rtmp://x/live", "LNX").unwrap();
    let raw = raw_command(&mut writer, 3, &body[..len]);
    let r = server.receive(now, &raw).unwrap();
    assert_eq!(r.consumed, raw.len());
    assert_eq!(
        r.event,
        Some(Event::Connected {
            app: "live",
            tc_url: "rtmp://x/live",
            flash_ver: "LNX"
        })
    );
    assert!(!server.transmit().is_empty());
}

/// A connected server session, a chunk writer to talk raw RTMP to it, and everything the server
/// has sent so far (to decode its replies with a reader that saw the whole stream).
fn connected_server() -> (Server, ChunkWriter<8>, Instant, Vec<u8>) {
    connected_server_as(ClientRole::Play)
}

/// [`connected_server`] with the client playing or publishing.
fn connected_server_as(role: ClientRole) -> (Server, ChunkWriter<8>, Instant, Vec<u8>) {
    let mut p = Pair::new(9, &ServerConfig::default(), role, false);
    p.run();
    assert!(match role {
        ClientRole::Play => p.server.is_playing(),
        ClientRole::Publish => p.server.is_publishing(),
    });
    // The client's writer state is unknown here: use fresh csids (10, 11), so fmt 0 first.
    (p.server, ChunkWriter::new(), p.now, p.log.server_output)
}

fn raw_command(writer: &mut ChunkWriter<8>, csid: u32, body: &[u8]) -> Vec<u8> {
    raw_message(writer, csid, message::COMMAND_AMF0, 0, body)
}

fn raw_message(
    writer: &mut ChunkWriter<8>,
    csid: u32,
    type_id: u8,
    stream_id: u32,
    body: &[u8],
) -> Vec<u8> {
    let header = MessageHeader {
        csid,
        timestamp: 0,
        length: body.len() as u32,
        type_id,
        stream_id,
    };
    let mut out = std::vec![0u8; body.len() + 64];
    let n = writer.write(&mut out, &header, body).unwrap();
    out.truncate(n);
    out
}

/// Moves the server's new output into `history` and returns every message the server ever
/// sent (type and payload), decoded from the start of the stream.
fn server_messages(server: &mut Server, history: &mut Vec<u8>) -> Vec<(u8, Vec<u8>)> {
    let out = server.transmit().to_vec();
    server.advance(out.len());
    history.extend_from_slice(&out);
    let mut reader: ChunkReader<8, 16384> = ChunkReader::new(16384);
    let mut messages = Vec::new();
    // Skip S0 + S1 + S2.
    let mut at = 3073;
    while at < history.len() {
        let (n, msg) = reader.read(&history[at..]).unwrap();
        assert!(n > 0, "server output ends in a partial chunk");
        at += n;
        if let Some(msg) = msg {
            messages.push((msg.header.type_id, msg.payload.to_vec()));
        }
    }
    messages
}

/// Every `_result` / `_error` transaction id the server ever sent (see [`server_messages`]).
fn server_replies(server: &mut Server, history: &mut Vec<u8>) -> (Vec<f64>, Vec<f64>) {
    let (mut results, mut errors) = (Vec::new(), Vec::new());
    for (type_id, payload) in server_messages(server, history) {
        if type_id == message::COMMAND_AMF0 {
            match command::parse_command(&payload).unwrap() {
                Command::Result { transaction_id, .. } => results.push(transaction_id),
                Command::Error { transaction_id, .. } => errors.push(transaction_id),
                _ => {}
            }
        }
    }
    (results, errors)
}

/// Every protocol / user control message the server ever sent (see [`server_messages`]).
fn server_controls(server: &mut Server, history: &mut Vec<u8>) -> Vec<Control> {
    server_messages(server, history)
        .iter()
        .filter_map(|(type_id, payload)| message::parse_control(*type_id, payload).unwrap())
        .collect()
}

/// An AMF0 command body: name, transaction id, null, then an optional string or number.
fn command_body(name: &str, transaction_id: f64, arg: Option<Result<&str, f64>>) -> Vec<u8> {
    let mut body = [0u8; 128];
    let mut enc = crate::amf0::Encoder::new(&mut body);
    enc.string(name).unwrap();
    enc.number(transaction_id).unwrap();
    enc.null().unwrap();
    match arg {
        Some(Ok(s)) => enc.string(s).unwrap(),
        Some(Err(n)) => enc.number(n).unwrap(),
        None => {}
    }
    let len = enc.len();
    body[..len].to_vec()
}

/// Sends one raw message and returns the event's name (the server must consume all of it).
fn feed(server: &mut Server, now: Instant, raw: &[u8]) -> Option<&'static str> {
    let r = server.receive(now, raw).expect("the session survives");
    assert_eq!(r.consumed, raw.len());
    r.event.map(|e| match e {
        Event::PlayRequested { .. } => "play",
        Event::PlayStopped => "play stopped",
        Event::Unpublished => "unpublished",
        Event::Audio { .. } => "audio",
        _ => "other",
    })
}

#[test]
fn stream_commands_keep_the_connection_and_pings_are_answered() {
    let (mut server, mut writer, now, mut history) = connected_server();
    // What ffmpeg, OBS, rtmpdump and GStreamer send besides play/publish: no reply (nginx-rtmp
    // answers none of them in live mode), no event, no disconnect.
    for (name, arg) in [
        ("releaseStream", Some(Ok("audio"))),
        ("FCPublish", Some(Ok("audio"))),
        ("FCUnpublish", Some(Ok("audio"))),
        ("getStreamLength", Some(Ok("audio"))),
        ("_checkbw", None),
    ] {
        let raw = raw_command(&mut writer, 10, &command_body(name, 30.0, arg));
        assert_eq!(feed(&mut server, now, &raw), None, "{name}");
        assert!(server.is_playing(), "{name}");
    }
    let (results, errors) = server_replies(&mut server, &mut history);
    assert_eq!((results, errors), (std::vec![1.0, 4.0], std::vec![]));

    // A PingRequest is answered with a PingResponse carrying its timestamp (spec 7.1.7).
    let ping = Control::User(UserControl::PingRequest(0x1234_5678));
    let mut body = [0u8; 16];
    let len = ping.encode(&mut body).unwrap();
    let raw = raw_message(&mut writer, 2, ping.type_id(), 0, &body[..len]);
    assert_eq!(feed(&mut server, now, &raw), None);
    assert!(server_controls(&mut server, &mut history)
        .contains(&Control::User(UserControl::PingResponse(0x1234_5678))));

    // closeStream and deleteStream end the play, not the connection: a new play is served.
    for (name, arg) in [("closeStream", None), ("deleteStream", Some(Err(1.0)))] {
        let raw = raw_message(
            &mut writer,
            11,
            message::COMMAND_AMF0,
            MEDIA_STREAM_ID,
            &command_body(name, 0.0, arg),
        );
        assert_eq!(feed(&mut server, now, &raw), Some("play stopped"), "{name}");
        assert!(!server.is_playing());
        let mut body = [0u8; 64];
        let len = command::encode_play(&mut body, 0.0, "audio", -2.0).unwrap();
        let raw = raw_message(
            &mut writer,
            11,
            message::COMMAND_AMF0,
            MEDIA_STREAM_ID,
            &body[..len],
        );
        assert_eq!(
            feed(&mut server, now, &raw),
            Some("play"),
            "play after {name}"
        );
        server.accept_play().unwrap();
        assert!(server.is_playing());
    }
}

#[test]
fn publisher_is_acknowledged_at_its_window_and_unpublishes_with_fc_unpublish() {
    let (mut server, mut writer, now, mut history) = connected_server_as(ClientRole::Publish);
    let acks = |server: &mut Server, history: &mut Vec<u8>| -> Vec<u32> {
        server_controls(server, history)
            .into_iter()
            .filter_map(|c| match c {
                Control::Acknowledgement { sequence } => Some(sequence),
                _ => None,
            })
            .collect()
    };
    // The client announced a 5 MB window: nothing acknowledged yet.
    assert_eq!(acks(&mut server, &mut history), []);

    let window_ack_size = |size| {
        let window = Control::WindowAckSize(size);
        let mut body = [0u8; 16];
        let len = window.encode(&mut body).unwrap();
        raw_message(
            &mut ChunkWriter::<8>::new(),
            2,
            window.type_id(),
            0,
            &body[..len],
        )
    };
    // A window smaller than everything received so far (the client's commands): the first
    // Acknowledgement comes at once and counts all of it.
    let raw = window_ack_size(100);
    assert_eq!(feed(&mut server, now, &raw), None);
    let first = acks(&mut server, &mut history);
    assert_eq!(first.len(), 1, "{first:?}");
    assert!(first[0] as usize > raw.len() + 100, "{first:?}");
    let mut sent = u64::from(first[0]);

    // Then a 4000-byte window and 1500-byte audio messages (one chunk each: the client set
    // 4096): one Acknowledgement each time another 4000 bytes are in, with the exact count.
    let raw = window_ack_size(4_000);
    sent += raw.len() as u64;
    assert_eq!(feed(&mut server, now, &raw), None);
    writer.set_chunk_size(4096).unwrap();
    let mut expected = std::vec![first[0]];
    let mut last = u64::from(first[0]);
    for _ in 0..10 {
        let raw = raw_message(
            &mut writer,
            12,
            message::AUDIO,
            MEDIA_STREAM_ID,
            &[0x3F; 1500],
        );
        sent += raw.len() as u64;
        assert_eq!(feed(&mut server, now, &raw), Some("audio"));
        if sent - last >= 4_000 {
            expected.push(sent as u32);
            last = sent;
        }
    }
    assert_eq!(expected.len(), 4, "{expected:?}");
    assert_eq!(acks(&mut server, &mut history), expected);

    let raw = raw_command(
        &mut writer,
        10,
        &command_body("FCUnpublish", 9.0, Some(Ok("audio"))),
    );
    assert_eq!(feed(&mut server, now, &raw), Some("unpublished"));
    assert!(!server.is_publishing());
}

#[test]
fn unknown_command_gets_error_and_session_survives() {
    let (mut server, mut writer, now, mut history) = connected_server();
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
    let (_, errors) = server_replies(&mut server, &mut history);
    assert_eq!(errors, [9.0]);
    assert!(server.is_playing());
}

#[test]
fn second_connect_closes_and_create_stream_flood_is_capped() {
    let (mut server, mut writer, now, mut history) = connected_server();
    // The play client created one stream; three more are allowed, then `_error`.
    let mut body = [0u8; 256];
    let len = command::encode_create_stream(&mut body, 20.0).unwrap();
    for _ in 0..5 {
        let raw = raw_command(&mut writer, 11, &body[..len]);
        assert_eq!(server.receive(now, &raw).unwrap().consumed, raw.len());
    }
    let (results, errors) = server_replies(&mut server, &mut history);
    // connect (1), the client's createStream (4), then three of ours (20) and two errors.
    assert_eq!(results, [1.0, 4.0, 20.0, 20.0, 20.0]);
    assert_eq!(errors, [20.0, 20.0]);

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
