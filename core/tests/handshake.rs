//! Handshake state machines against each other, against real clients' C1 and against a reference
//! check written here from the protocol description (protocol-notes.md §1, nginx-rtmp
//! `ngx_rtmp_handshake.c`, ffmpeg `rtmpproto.c`), independent of the module's own helpers.

use hmac::{Hmac, Mac};
use sha2::Sha256;
use zerocast_core::handshake::{
    ClientHandshake, DigestScheme, HandshakeError, HandshakeKind, ServerHandshake, BUFFER_SIZE,
    C1_SIZE,
};

const PLAYER_KEY: &[u8] = b"Genuine Adobe Flash Player 001";
const SERVER_KEY: &[u8] = b"Genuine Adobe Flash Media Server 001";
const KEY_TAIL: [u8; 32] = [
    0xF0, 0xEE, 0xC2, 0x4A, 0x80, 0x68, 0xBE, 0xE8, 0x2E, 0x00, 0xD0, 0xD1, 0x02, 0x9E, 0x7E, 0x57,
    0x6E, 0xEC, 0x5D, 0x2D, 0x29, 0x80, 0x6F, 0xAB, 0x93, 0xB8, 0xE6, 0x36, 0xCF, 0xEB, 0x31, 0xAE,
];

const FFMPEG_C0C1: &[u8] = include_bytes!("vectors/handshake/ffmpeg_play_c0c1.bin");
const RTMPDUMP_C0C1: &[u8] = include_bytes!("vectors/handshake/rtmpdump_c0c1.bin");

/// What a client sends right after C2 (start of an AMF0 `connect` chunk), to prove it is left alone.
const TRAILER: &[u8] = b"\x03\x00\x00\x00\x00\x00\xc5\x14\x00\x00\x00\x00\x02\x00\x07connect";

const EPOCH: u32 = 0x0102_0304;

fn mac(key: &[u8], parts: &[&[u8]]) -> [u8; 32] {
    let mut m = Hmac::<Sha256>::new_from_slice(key).unwrap();
    for part in parts {
        m.update(part);
    }
    m.finalize().into_bytes().into()
}

fn full_key(text: &[u8]) -> Vec<u8> {
    [text, &KEY_TAIL[..]].concat()
}

/// Reference digest check: the 32 bytes at `sum(packet[base..base + 4]) % 728 + base + 4` are the
/// HMAC of the rest of the packet. Returns the digest when valid.
fn reference_digest(packet: &[u8], base: usize, key: &[u8]) -> Option<[u8; 32]> {
    assert_eq!(packet.len(), C1_SIZE);
    let sum: usize = packet[base..base + 4].iter().map(|&b| b as usize).sum();
    let at = sum % 728 + base + 4;
    let digest = mac(key, &[&packet[..at], &packet[at + 32..]]);
    (packet[at..at + 32] == digest).then_some(digest)
}

/// Reference signature check of S2/C2: last 32 bytes = HMAC(HMAC(full key, peer digest), first 1504).
fn reference_signed(packet: &[u8], full: &[u8], peer_digest: &[u8; 32]) -> bool {
    let key = mac(full, &[peer_digest]);
    packet[C1_SIZE - 32..] == mac(&key, &[&packet[..C1_SIZE - 32]])
}

/// A small deterministic generator for split sizes and garbage.
struct XorShift(u64);

impl XorShift {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

/// How many bytes to move at a time.
#[derive(Clone, Copy, Debug)]
enum Split {
    Whole,
    OneByte,
    Random(u64),
}

struct Splitter {
    split: Split,
    rng: XorShift,
}

impl Splitter {
    fn new(split: Split) -> Self {
        let seed = match split {
            Split::Random(seed) => seed,
            _ => 1,
        };
        Self {
            split,
            rng: XorShift(seed),
        }
    }

    fn take(&mut self, available: usize) -> usize {
        match self.split {
            Split::Whole => available,
            Split::OneByte => available.min(1),
            Split::Random(_) => available.min(1 + self.rng.below(700)),
        }
    }
}

/// Everything that went over the wire between a client and a server handshake.
struct Exchange {
    to_server: Vec<u8>,
    to_client: Vec<u8>,
}

/// Runs a client against a server, moving bytes in `split` sized pieces in both directions. Once
/// the client has sent C2 it also sends [`TRAILER`], which the server must leave unconsumed.
fn run(client: &mut ClientHandshake, server: &mut ServerHandshake, split: Split) -> Exchange {
    let mut s = Splitter::new(split);
    let (mut c2s, mut s2c) = (Vec::new(), Vec::new()); // in flight
    let mut wire = Exchange {
        to_server: Vec::new(),
        to_client: Vec::new(),
    };
    let mut trailer_sent = false;
    for _ in 0..100_000 {
        let n = s.take(client.transmit().len());
        c2s.extend_from_slice(&client.transmit()[..n]);
        wire.to_server.extend_from_slice(&client.transmit()[..n]);
        client.advance(n);
        if client.is_complete() && client.transmit().is_empty() && !trailer_sent {
            c2s.extend_from_slice(TRAILER);
            trailer_sent = true;
        }
        let n = s.take(server.transmit().len());
        s2c.extend_from_slice(&server.transmit()[..n]);
        wire.to_client.extend_from_slice(&server.transmit()[..n]);
        server.advance(n);

        let n = s.take(c2s.len());
        let used = server.receive(&c2s[..n]).unwrap();
        assert!(used <= n);
        c2s.drain(..used);
        let n = s.take(s2c.len());
        let used = client.receive(&s2c[..n]).unwrap();
        assert!(used <= n);
        s2c.drain(..used);

        if trailer_sent && server.is_complete() && server.transmit().is_empty() {
            assert!(s2c.is_empty(), "client left server bytes unread");
            assert_eq!(c2s, TRAILER, "server consumed past C2 ({split:?})");
            assert_eq!(server.receive(&c2s).unwrap(), 0);
            assert_eq!(client.receive(b"\x02more").unwrap(), 0);
            return wire;
        }
    }
    panic!("handshake did not finish ({split:?})");
}

fn splits() -> Vec<Split> {
    let mut all = vec![Split::Whole, Split::OneByte];
    all.extend((1..=20).map(|seed| Split::Random(seed * 0x9E37_79B9)));
    all
}

fn entropy(byte: u8) -> [u8; 32] {
    [byte; 32]
}

#[test]
fn plain_client_and_server_in_every_split() {
    for split in splits() {
        let mut client = ClientHandshake::new(EPOCH, entropy(1), false);
        let mut server = ServerHandshake::new(EPOCH + 1, entropy(2));
        let wire = run(&mut client, &mut server, split);

        let (c0, c1, c2) = (
            wire.to_server[0],
            &wire.to_server[1..1537],
            &wire.to_server[1537..3073],
        );
        let (s0, s1, s2) = (
            wire.to_client[0],
            &wire.to_client[1..1537],
            &wire.to_client[1537..],
        );
        assert_eq!((c0, s0), (3, 3));
        assert_eq!(wire.to_server.len(), 3073);
        assert_eq!(wire.to_client.len(), 3073);
        // C1 and S1: time, four zero bytes (spec §5.2.3), random.
        assert_eq!(c1[..8], [1, 2, 3, 4, 0, 0, 0, 0]);
        assert_eq!(s1[..8], [1, 2, 3, 5, 0, 0, 0, 0]);
        assert_ne!(c1[8..], s1[8..], "different entropy, different random");
        assert_eq!(s2, c1, "plain S2 echoes C1");
        assert_eq!(c2, s1, "plain C2 echoes S1");
        assert_eq!(server.kind(), HandshakeKind::Plain);
        assert_eq!(client.kind(), HandshakeKind::Plain);
        assert_eq!(client.server_digest_ok(), None);
        assert_eq!(client.server_signature_ok(), None);
    }
}

#[test]
fn digest_client_and_server_in_every_split() {
    let zero = HandshakeKind::Digest {
        scheme: DigestScheme::Zero,
    };
    for split in splits() {
        let mut client = ClientHandshake::new(EPOCH, entropy(3), true);
        assert_eq!(client.kind(), zero, "C1 form before S1");
        let mut server = ServerHandshake::new(EPOCH, entropy(4));
        let wire = run(&mut client, &mut server, split);

        let (c1, c2) = (&wire.to_server[1..1537], &wire.to_server[1537..3073]);
        let (s1, s2) = (&wire.to_client[1..1537], &wire.to_client[1537..]);
        // C1 as ffmpeg sends it: version 9.0.124.2 and a scheme-0 digest under the player key.
        assert_eq!(c1[4..8], [9, 0, 124, 2]);
        assert_eq!(reference_digest(c1, 772, PLAYER_KEY), None);
        let c1_digest = reference_digest(c1, 8, PLAYER_KEY).expect("C1 digest at scheme 0");
        // S1 as nginx-rtmp sends it: version 0D 0E 0A 0D, scheme-0 digest under the server key.
        assert_eq!(s1[..8], [1, 2, 3, 4, 0x0D, 0x0E, 0x0A, 0x0D]);
        let s1_digest = reference_digest(s1, 8, SERVER_KEY).expect("S1 digest at scheme 0");
        assert!(reference_signed(s2, &full_key(SERVER_KEY), &c1_digest));
        assert!(reference_signed(c2, &full_key(PLAYER_KEY), &s1_digest));
        assert_ne!(c2, s1);
        assert_eq!(server.kind(), zero);
        assert_eq!(client.kind(), zero);
        assert_eq!(client.server_digest_ok(), Some(true));
        assert_eq!(client.server_signature_ok(), Some(true));
    }
}

#[test]
fn ffmpeg_c1_gets_a_digest_reply_that_ffmpeg_accepts() {
    let mut server = ServerHandshake::new(EPOCH, entropy(5));
    assert_eq!(server.receive(FFMPEG_C0C1), Ok(1537));
    assert_eq!(
        server.kind(),
        HandshakeKind::Digest {
            scheme: DigestScheme::Zero
        }
    );
    let reply = server.transmit().to_vec();
    assert_eq!(reply.len(), 3073);
    let (s1, s2) = (&reply[1..1537], &reply[1537..]);
    // ffmpeg rtmp_handshake(): S1[4] >= 3 triggers the check, scheme 1 then 0, 36-byte key.
    assert!(s1[4] >= 3);
    assert!(reference_digest(s1, 772, SERVER_KEY)
        .or_else(|| reference_digest(s1, 8, SERVER_KEY))
        .is_some());
    let c1_digest = reference_digest(&FFMPEG_C0C1[1..], 8, PLAYER_KEY).unwrap();
    assert!(reference_signed(s2, &full_key(SERVER_KEY), &c1_digest));
}

#[test]
fn rtmpdump_c1_gets_a_plain_reply() {
    let mut server = ServerHandshake::new(EPOCH, entropy(6));
    assert_eq!(RTMPDUMP_C0C1[5..9], [0, 0, 0, 0]);
    assert_eq!(server.receive(RTMPDUMP_C0C1), Ok(1537));
    assert_eq!(server.kind(), HandshakeKind::Plain);
    let reply = server.transmit();
    assert_eq!(reply[0], 3);
    assert_eq!(reply[1..9], [1, 2, 3, 4, 0, 0, 0, 0]);
    assert_eq!(reply[1537..], RTMPDUMP_C0C1[1..]);
}

#[test]
fn versioned_c1_without_valid_digest_gets_a_plain_reply() {
    // nginx-rtmp: "digest not found" falls back to the old handshake.
    let mut c0c1 = FFMPEG_C0C1.to_vec();
    c0c1[1 + 494] ^= 1; // inside ffmpeg's digest (scheme 0, offset 494)
    let mut server = ServerHandshake::new(EPOCH, entropy(7));
    assert_eq!(server.receive(&c0c1), Ok(1537));
    assert_eq!(server.kind(), HandshakeKind::Plain);
    let reply = server.transmit();
    assert_eq!(
        reply[5..9],
        [0, 0, 0, 0],
        "S1 version zero: ffmpeg skips its check"
    );
    assert_eq!(reply[1537..], c0c1[1..]);
}

#[test]
fn server_rejects_other_versions_and_sends_nothing() {
    for version in [0u8, 6, b'G', 0xFF] {
        let mut server = ServerHandshake::new(EPOCH, entropy(8));
        let mut c0c1 = FFMPEG_C0C1.to_vec();
        c0c1[0] = version;
        let expected = Err(HandshakeError::UnsupportedVersion(version));
        assert_eq!(server.receive(&c0c1), expected);
        assert!(server.transmit().is_empty());
        assert_eq!(server.receive(FFMPEG_C0C1), expected, "the error sticks");
        assert!(server.transmit().is_empty());
        assert!(!server.is_complete());
    }
    let message = HandshakeError::UnsupportedVersion(6).to_string();
    assert!(message.contains('6'), "{message}");
}

#[test]
fn client_rejects_other_server_versions() {
    for version in [0u8, 6, 9] {
        let mut client = ClientHandshake::new(EPOCH, entropy(9), true);
        let n = client.transmit().len();
        client.advance(n);
        let expected = Err(HandshakeError::UnsupportedVersion(version));
        assert_eq!(client.receive(&[version, 0, 0]), expected);
        assert_eq!(client.receive(&[3]), expected);
        assert!(client.transmit().is_empty());
    }
}

#[test]
fn truncated_handshakes_wait_for_the_rest() {
    let mut server = ServerHandshake::new(EPOCH, entropy(10));
    assert_eq!(server.receive(&[]), Ok(0));
    assert_eq!(server.receive(&FFMPEG_C0C1[..1536]), Ok(1536));
    assert!(server.transmit().is_empty(), "no reply before all of C1");
    assert_eq!(server.receive(&FFMPEG_C0C1[1536..]), Ok(1));
    assert_eq!(
        server.transmit().len(),
        3073,
        "reply without waiting for C2"
    );
    assert_eq!(server.receive(&[0; 1535]), Ok(1535));
    assert!(!server.is_complete());
    assert_eq!(server.receive(&[0; 10]), Ok(1), "exactly 1536 bytes of C2");
    assert!(server.is_complete());
    assert_eq!(server.transmit().len(), 3073, "still to be sent");
    server.advance(5000);
    assert!(server.transmit().is_empty());

    let mut client = ClientHandshake::new(EPOCH, entropy(11), false);
    assert_eq!(client.receive(&[3; 10]), Ok(0), "C0+C1 not sent yet");
    client.advance(1000);
    assert_eq!(client.receive(&[3; 10]), Ok(0), "C1 partly sent");
    client.advance(537);
    assert!(client.transmit().is_empty());
    let reply = {
        let mut server = ServerHandshake::new(EPOCH, entropy(12));
        server.receive(RTMPDUMP_C0C1).unwrap();
        server.transmit().to_vec()
    };
    assert_eq!(client.receive(&reply[..3072]), Ok(3072));
    assert!(!client.is_complete());
    assert!(client.transmit().is_empty(), "no C2 before all of S2");
    assert_eq!(client.receive(&reply[3072..]), Ok(1));
    assert!(client.is_complete());
    assert_eq!(client.transmit(), &reply[1..1537], "C2 echoes S1");
}

/// A hand-made S0+S1+S2 for a digest client: S1 with `version` and otherwise arbitrary bytes.
fn crafted_reply(version: [u8; 4]) -> Vec<u8> {
    let mut reply = vec![3u8];
    let mut rng = XorShift(77);
    let mut s1: Vec<u8> = (0..C1_SIZE).map(|_| rng.next() as u8).collect();
    s1[4..8].copy_from_slice(&version);
    reply.extend_from_slice(&s1);
    reply.extend((0..C1_SIZE).map(|_| rng.next() as u8));
    reply
}

fn digest_client_after_c1() -> ClientHandshake {
    let mut client = ClientHandshake::new(EPOCH, entropy(13), true);
    let n = client.transmit().len();
    client.advance(n);
    client
}

#[test]
fn digest_client_with_plain_server_echoes_s1_unchecked() {
    let mut client = digest_client_after_c1();
    let reply = crafted_reply([0; 4]);
    assert_eq!(client.receive(&reply), Ok(3073));
    assert_eq!(client.server_digest_ok(), None);
    assert_eq!(client.kind(), HandshakeKind::Plain);
    assert_eq!(client.transmit(), &reply[1..1537]);
}

#[test]
fn digest_client_reports_a_missing_server_digest() {
    let mut client = digest_client_after_c1();
    let reply = crafted_reply([0x0D, 0x0E, 0x0A, 0x0D]);
    assert_eq!(client.receive(&reply), Ok(3073));
    assert_eq!(client.server_digest_ok(), Some(false));
    assert_eq!(client.server_signature_ok(), None);
    assert_eq!(client.kind(), HandshakeKind::Plain);
    assert_eq!(client.transmit(), &reply[1..1537]);
}

#[test]
fn digest_client_reports_a_bad_s2_signature() {
    let mut client = ClientHandshake::new(EPOCH, entropy(14), true);
    let mut server = ServerHandshake::new(EPOCH, entropy(15));
    let c0c1 = client.transmit().to_vec();
    client.advance(c0c1.len());
    server.receive(&c0c1).unwrap();
    let mut reply = server.transmit().to_vec();
    reply[3072] ^= 0x80; // last byte of the S2 signature
    assert_eq!(client.receive(&reply), Ok(3073));
    assert_eq!(client.server_digest_ok(), Some(true));
    assert_eq!(client.server_signature_ok(), Some(false));
}

#[test]
fn garbage_in_random_splits_never_panics_or_overreads() {
    let mut rng = XorShift(0xDEAD_BEEF);
    for round in 0..300 {
        let len = rng.below(8000);
        let mut input: Vec<u8> = (0..len).map(|_| rng.next() as u8).collect();
        if round % 2 == 0 && !input.is_empty() {
            input[0] = 3; // get past C0 / S0 half of the time
        }
        let mut server = ServerHandshake::new(round, entropy(16));
        let mut client = ClientHandshake::new(round, entropy(17), round % 3 == 0);
        client.advance(usize::MAX);
        let (mut at_server, mut at_client) = (0usize, 0usize);
        while at_server < input.len() || at_client < input.len() {
            let step = 1 + rng.below(900);
            let end = (at_server + step).min(input.len());
            match server.receive(&input[at_server..end]) {
                Ok(0) => at_server = input.len(),
                Ok(n) => {
                    assert!(n <= end - at_server);
                    at_server += n;
                }
                Err(HandshakeError::UnsupportedVersion(v)) => {
                    assert_eq!(v, input[0]);
                    at_server = input.len();
                }
            }
            server.advance(rng.below(4000));
            let end = (at_client + step).min(input.len());
            match client.receive(&input[at_client..end]) {
                Ok(0) => at_client = input.len(),
                Ok(n) => {
                    assert!(n <= end - at_client);
                    at_client += n;
                }
                Err(HandshakeError::UnsupportedVersion(v)) => {
                    assert_eq!(v, input[0]);
                    at_client = input.len();
                }
            }
        }
        assert_eq!(server.is_complete(), len >= 3073 && input[0] == 3);
        assert_eq!(client.is_complete(), len >= 3073 && input[0] == 3);
        assert!(server.transmit().len() <= BUFFER_SIZE);
        assert!(client.transmit().len() <= C1_SIZE);
    }
}

#[test]
fn each_handshake_is_one_buffer_of_about_3_kib() {
    assert_eq!(BUFFER_SIZE, 3073);
    assert!(std::mem::size_of::<ServerHandshake>() <= BUFFER_SIZE + 128);
    assert!(std::mem::size_of::<ClientHandshake>() <= BUFFER_SIZE + 128);
}
