//! The RTMP handshake, server and client, plain and digest ("FP9", "complex"), sans-IO.
//!
//! Wire format (Adobe RTMP spec 1.0 §5.2): C0/S0 is one version byte (3); C1/S1 are 1536 bytes
//! `time(4) + zero(4) + random(1528)`; C2/S2 echo the peer's C1/S1. Flash Player 9 and later,
//! ffmpeg and nginx-rtmp also speak an undocumented variant: bytes 4..8 of C1/S1 carry a version and
//! 32 bytes at an offset computed from four other bytes of the packet hold an HMAC-SHA256 of the
//! rest of the packet ([`DigestScheme`]); S2/C2 then end in an HMAC keyed with a hash of the
//! peer's digest. ffmpeg (`rtmpproto.c`, `rtmp_handshake()`) refuses to play from a server whose
//! S1 carries a version but no valid digest, so a server must either answer with a valid digest or
//! with version bytes of zero — never by echoing ffmpeg's own C1 (protocol-notes.md §1).
//!
//! Both machines follow the same call order (the `BufRead::fill_buf`/`consume` shape):
//! 1. send what [`ServerHandshake::transmit`] returns and report it with `advance(n)`;
//! 2. pass the bytes read from the peer to `receive`, which returns how many it used — never more
//!    than the handshake itself, so the first RTMP chunk that arrives in the same read stays with
//!    the caller;
//! 3. repeat until `is_complete()` and `transmit()` is empty.
//!
//! Memory: each handshake holds one [`BUFFER_SIZE`] (3073 bytes) array plus a few words, nothing
//! else; neither ever allocates. Work per call is bounded by at most four HMAC-SHA256 passes over
//! a 1536-byte packet.
//!
//! Randomness: the caller passes 32 bytes of entropy once; the random fields are filled with
//! SHA-256(entropy ‖ counter) blocks. The digest scheme is obfuscation, not security (the keys are
//! public), so this only needs to be unpredictable enough that peers cannot tell sessions apart.
//!
//! Fuzzing: compiled with `--cfg fuzzing` (as `cargo fuzz` does), every digest check succeeds, so
//! a fuzzer reaches the digest replies without forging HMACs. Never ship a build with that cfg.

use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};

/// The only RTMP version this crate speaks in C0/S0 (spec §5.2.2; 6 would ask for RTMPE).
pub const RTMP_VERSION: u8 = 3;

/// Size of C1, S1, C2 and S2 (spec §5.2.3).
pub const C1_SIZE: usize = 1536;

/// Size of an HMAC-SHA256 digest inside a handshake packet.
pub const DIGEST_SIZE: usize = 32;

/// The one buffer each handshake owns: room for S0+S1+S2 (server) or S1+S2 then C2 (client).
pub const BUFFER_SIZE: usize = 1 + 2 * C1_SIZE;

/// C0 + C1 (or S0 + S1): the first message of each side.
const FIRST_SIZE: usize = 1 + C1_SIZE;

/// Everything one side receives: version byte + two packets.
const INPUT_SIZE: usize = 1 + 2 * C1_SIZE;

/// Where the final digest of S2/C2 starts: 1536 − 32.
const SIGNED_LEN: usize = C1_SIZE - DIGEST_SIZE;

/// The 32 bytes both Adobe keys end with (`ngx_rtmp_handshake.c` `ngx_rtmp_server_key` /
/// `ngx_rtmp_client_key`; ffmpeg `rtmpproto.c` `rtmp_player_key` / `rtmp_server_key`).
const KEY_TAIL: [u8; 32] = [
    0xF0, 0xEE, 0xC2, 0x4A, 0x80, 0x68, 0xBE, 0xE8, 0x2E, 0x00, 0xD0, 0xD1, 0x02, 0x9E, 0x7E, 0x57,
    0x6E, 0xEC, 0x5D, 0x2D, 0x29, 0x80, 0x6F, 0xAB, 0x93, 0xB8, 0xE6, 0x36, 0xCF, 0xEB, 0x31, 0xAE,
];

/// The first 30 bytes of the player key: the key of a C1 digest.
const PLAYER_KEY_TEXT: &[u8] = b"Genuine Adobe Flash Player 001";

/// The first 36 bytes of the server key: the key of an S1 digest.
const SERVER_KEY_TEXT: &[u8] = b"Genuine Adobe Flash Media Server 001";

/// A key given as parts, so the 62- and 68-byte keys need no concatenated copy.
type Key<'a> = [&'a [u8]];

/// Keys a C1 digest (30 bytes; nginx `ngx_rtmp_client_partial_key`).
const PLAYER_PARTIAL: [&[u8]; 1] = [PLAYER_KEY_TEXT];
/// Keys a C2 signature via the S1 digest (62 bytes; ffmpeg `rtmp_player_key`).
const PLAYER_FULL: [&[u8]; 2] = [PLAYER_KEY_TEXT, &KEY_TAIL];
/// Keys an S1 digest (36 bytes; nginx `ngx_rtmp_server_partial_key`).
const SERVER_PARTIAL: [&[u8]; 1] = [SERVER_KEY_TEXT];
/// Keys an S2 signature via the C1 digest (68 bytes; nginx `ngx_rtmp_server_full_key`).
const SERVER_FULL: [&[u8]; 2] = [SERVER_KEY_TEXT, &KEY_TAIL];

/// S1 version bytes of a digest reply: nginx-rtmp's `ngx_rtmp_server_version`. ffmpeg validates the
/// S1 digest only when S1 byte 4 is >= 3, which 0x0D is.
const SERVER_VERSION: [u8; 4] = [0x0D, 0x0E, 0x0A, 0x0D];

/// C1 version bytes of a digest C1: ffmpeg's `RTMP_CLIENT_VER1..4` (9.0.124.2), so servers treat
/// this client exactly like ffmpeg.
const CLIENT_VERSION: [u8; 4] = [9, 0, 124, 2];

/// Where a digest sits in a C1/S1, as nginx-rtmp and ffmpeg compute it: the four bytes at `base`
/// are summed, and the digest starts at `sum % 728 + base + 4`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum DigestScheme {
    /// Offset bytes at 8..12, digest within 12..772 (what ffmpeg and nginx-rtmp write).
    Zero,
    /// Offset bytes at 772..776, digest within 776..1536 (used by some Flash Player versions).
    One,
}

impl DigestScheme {
    /// Where the four offset bytes start in the 1536-byte packet.
    pub const fn base(self) -> usize {
        match self {
            Self::Zero => 8,
            Self::One => 772,
        }
    }

    /// The digest offset this scheme gives for `packet` (a C1 or S1 without the version byte).
    /// At most 1503, so the digest always fits in a 1536-byte packet.
    pub fn offset(self, packet: &[u8]) -> usize {
        let base = self.base();
        let sum: usize = packet
            .iter()
            .skip(base)
            .take(4)
            .map(|&b| usize::from(b))
            .sum();
        sum % 728 + base + 4
    }
}

/// Which handshake was made.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum HandshakeKind {
    /// Spec §5.2 handshake: no digests.
    Plain,
    /// Digest handshake; `scheme` is where the peer's digest was found.
    Digest {
        /// Where the peer's C1 (server side) or S1 (client side) digest was found.
        scheme: DigestScheme,
    },
}

/// What was wrong with the peer's handshake bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum HandshakeError {
    /// C0/S0 asked for a version other than 3 (e.g. 6 = RTMPE, or a stray HTTP request's 'G').
    UnsupportedVersion(u8),
}

impl core::fmt::Display for HandshakeError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Self::UnsupportedVersion(v) => {
                write!(
                    f,
                    "unsupported RTMP version {v} (only {RTMP_VERSION} is spoken)"
                )
            }
        }
    }
}

/// HMAC-SHA256 of the concatenated `message` parts under the concatenated `key` parts.
///
/// The key is brought to the SHA-256 block size here exactly as RFC 2104 §2 prescribes (hashed
/// when longer than 64 bytes, then zero-padded), so the `hmac` crate's infallible fixed-size
/// constructor can be used and no error path exists.
fn hmac(key: &Key<'_>, message: &[&[u8]]) -> [u8; DIGEST_SIZE] {
    let mut block = [0u8; 64];
    let key_len: usize = key.iter().map(|part| part.len()).sum();
    if key_len > block.len() {
        let hashed = key
            .iter()
            .fold(Sha256::new(), |h, part| h.chain_update(part))
            .finalize();
        block.iter_mut().zip(hashed).for_each(|(d, s)| *d = s);
    } else {
        let bytes = key.iter().flat_map(|part| part.iter());
        block.iter_mut().zip(bytes).for_each(|(d, s)| *d = *s);
    }
    let mac = message
        .iter()
        .fold(Hmac::<Sha256>::new(&block.into()), |m, part| {
            m.chain_update(part)
        });
    mac.finalize().into_bytes().into()
}

/// A digest check: plain equality, or always true under `cfg(fuzzing)` (see the module docs).
/// Not constant-time on purpose: the keys are public, there is nothing to protect.
fn digests_match(stored: &[u8], expected: &[u8; DIGEST_SIZE]) -> bool {
    cfg!(fuzzing) || stored == expected
}

/// HMAC of `packet` without the 32 bytes at `offset` (nginx `ngx_rtmp_make_digest` with `skip`).
fn packet_digest(packet: &[u8], offset: usize, key: &Key<'_>) -> [u8; DIGEST_SIZE] {
    let (head, rest) = packet.split_at(offset.min(packet.len()));
    hmac(key, &[head, rest.get(DIGEST_SIZE..).unwrap_or_default()])
}

/// The digest stored in `packet` at `scheme`, when it is valid under `key`.
fn digest_at(packet: &[u8], scheme: DigestScheme, key: &Key<'_>) -> Option<[u8; DIGEST_SIZE]> {
    let offset = scheme.offset(packet);
    let stored = packet.get(offset..offset + DIGEST_SIZE)?;
    let expected = packet_digest(packet, offset, key);
    digests_match(stored, &expected).then_some(expected)
}

/// Looks for a valid digest the way nginx-rtmp (`ngx_rtmp_handshake_parse_challenge`) and ffmpeg
/// (`rtmp_handshake`) do: scheme 1 first, then scheme 0.
fn find_digest(packet: &[u8], key: &Key<'_>) -> Option<(DigestScheme, [u8; DIGEST_SIZE])> {
    [DigestScheme::One, DigestScheme::Zero]
        .into_iter()
        .find_map(|scheme| digest_at(packet, scheme, key).map(|digest| (scheme, digest)))
}

/// Writes the scheme-0 digest into `packet` (nginx `ngx_rtmp_write_digest`, ffmpeg
/// `rtmp_handshake_imprint_with_digest`) and returns it.
fn imprint_digest(packet: &mut [u8], key: &Key<'_>) -> [u8; DIGEST_SIZE] {
    let offset = DigestScheme::Zero.offset(packet);
    let digest = packet_digest(packet, offset, key);
    if let Some(slot) = packet.get_mut(offset..offset + DIGEST_SIZE) {
        slot.copy_from_slice(&digest);
    }
    digest
}

/// The key of the final 32 bytes of S2 (or C2): HMAC(full key of the signer, peer's digest).
fn signature_key(full_key: &Key<'_>, peer_digest: &[u8; DIGEST_SIZE]) -> [u8; DIGEST_SIZE] {
    hmac(full_key, &[peer_digest])
}

/// Makes the last 32 bytes of `packet` the HMAC of the first 1504 under `key` (digest S2/C2).
fn sign(packet: &mut [u8], key: &[u8; DIGEST_SIZE]) {
    if let Some((body, signature)) = packet.split_at_mut_checked(SIGNED_LEN) {
        let value = hmac(&[key], &[body]);
        signature.iter_mut().zip(value).for_each(|(d, s)| *d = s);
    }
}

/// Whether the last 32 bytes of `packet` are the HMAC of the first 1504 under `key`.
fn signature_valid(packet: &[u8], key: &[u8; DIGEST_SIZE]) -> bool {
    packet
        .split_at_checked(SIGNED_LEN)
        .is_some_and(|(body, signature)| digests_match(signature, &hmac(&[key], &[body])))
}

/// Expands the caller's 32 bytes of entropy: block i = SHA-256(seed ‖ i as big-endian u32).
struct Expander {
    seed: [u8; 32],
    counter: u32,
}

impl Expander {
    fn fill(&mut self, out: &mut [u8]) {
        for chunk in out.chunks_mut(DIGEST_SIZE) {
            let block = Sha256::new()
                .chain_update(self.seed)
                .chain_update(self.counter.to_be_bytes())
                .finalize();
            self.counter = self.counter.wrapping_add(1);
            chunk.iter_mut().zip(block).for_each(|(d, s)| *d = s);
        }
    }
}

/// Fills a C1/S1: `time(4) + version(4) + random(1528)` (spec §5.2.3; version 0 = plain).
fn fill_packet(packet: &mut [u8], time: u32, version: [u8; 4], random: &mut Expander) {
    let (head, rest) = packet.split_at_mut(8.min(packet.len()));
    let fields = time.to_be_bytes().into_iter().chain(version);
    head.iter_mut().zip(fields).for_each(|(d, s)| *d = s);
    random.fill(rest);
}

/// Whether bytes 4..8 of a C1/S1 are non-zero, i.e. the peer announces a version and may carry a
/// digest (nginx `ngx_rtmp_handshake_parse_challenge`: zero = "old" handshake).
fn has_version(packet: &[u8]) -> bool {
    packet.iter().skip(4).take(4).any(|&b| b != 0)
}

/// Copies as much of `input` as fits into `dst`; returns how much.
fn copy_in(dst: &mut [u8], input: &[u8]) -> usize {
    dst.iter_mut().zip(input).map(|(d, s)| *d = *s).count()
}

/// The handshake's one buffer and the part of it still to be sent.
struct Buffer {
    bytes: [u8; BUFFER_SIZE],
    tx_start: usize,
    tx_end: usize,
}

impl Buffer {
    const fn new() -> Self {
        Self {
            bytes: [0; BUFFER_SIZE],
            tx_start: 0,
            tx_end: 0,
        }
    }

    fn pending(&self) -> &[u8] {
        self.bytes
            .get(self.tx_start..self.tx_end)
            .unwrap_or_default()
    }

    fn advance(&mut self, n: usize) {
        self.tx_start = self.tx_start.saturating_add(n).min(self.tx_end);
    }

    fn queue(&mut self, len: usize) {
        self.tx_start = 0;
        self.tx_end = len.min(BUFFER_SIZE);
    }
}

/// The server side: reads C0+C1, answers S0+S1+S2 at once, then reads C2.
///
/// Call order: see the [module docs](self). The reply is queued as soon as C0+C1 are in, without
/// waiting for C2, as nginx-rtmp does — gst `rtmp2src` reads S0+S1+S2 before it sends C2, so a
/// server that waited would deadlock it (protocol-notes.md §1).
///
/// Reply: when C1 announces a version and carries a valid digest, the digest reply (S1 with
/// version 0D 0E 0A 0D and a scheme-0 digest, S2 signed with the C1 digest) that ffmpeg and VLC
/// verify when playing; otherwise the plain reply, S1 = time + four zero bytes + random and
/// S2 = C1, which ffmpeg does not check. C2 is read (1536 bytes) and ignored: librtmp, OBS and
/// gst rewrite parts of it, and nginx-rtmp never checks it either.
pub struct ServerHandshake {
    buffer: Buffer,
    /// Bytes of C0+C1+C2 consumed so far, up to `INPUT_SIZE`.
    received: usize,
    epoch: u32,
    random: Expander,
    kind: HandshakeKind,
    error: Option<HandshakeError>,
}

impl ServerHandshake {
    /// A server handshake; `epoch` goes into S1's time field, `entropy` seeds the random fields.
    pub const fn new(epoch: u32, entropy: [u8; 32]) -> Self {
        Self {
            buffer: Buffer::new(),
            received: 0,
            epoch,
            random: Expander {
                seed: entropy,
                counter: 0,
            },
            kind: HandshakeKind::Plain,
            error: None,
        }
    }

    /// Takes bytes from the client; returns how many were used. Never uses a byte past C2, so
    /// whatever follows (ffmpeg's `connect` often comes in the same read) stays with the caller.
    /// `Ok(0)` once complete. After an error every call returns the same error and nothing is
    /// ever queued for sending.
    pub fn receive(&mut self, input: &[u8]) -> Result<usize, HandshakeError> {
        if let Some(error) = self.error {
            return Err(error);
        }
        let mut used = 0;
        if self.received < FIRST_SIZE {
            if let (0, Some(&version)) = (self.received, input.first()) {
                if version != RTMP_VERSION {
                    warn!("handshake: client asked for RTMP version {}", version);
                    self.error = Some(HandshakeError::UnsupportedVersion(version));
                    return Err(HandshakeError::UnsupportedVersion(version));
                }
            }
            let dst = self.buffer.bytes.get_mut(self.received..FIRST_SIZE);
            used = copy_in(dst.unwrap_or_default(), input);
            self.received += used;
            if self.received == FIRST_SIZE {
                self.reply();
            }
        }
        if self.received >= FIRST_SIZE {
            // C2 is only counted: its content is never checked (see the type docs).
            let c2 = (INPUT_SIZE - self.received).min(input.len().saturating_sub(used));
            self.received += c2;
            used += c2;
        }
        Ok(used)
    }

    /// Builds S0+S1+S2 in place of C0+C1 and queues them.
    fn reply(&mut self) {
        let (s0_c1, s2) = self.buffer.bytes.split_at_mut(FIRST_SIZE);
        let (_, c1) = s0_c1.split_at_mut(1);
        let client_digest = if has_version(c1) {
            find_digest(c1, &PLAYER_PARTIAL)
        } else {
            None
        };
        match client_digest {
            Some((scheme, digest)) => {
                debug!(
                    "handshake: client digest at scheme {:?}: digest reply",
                    scheme
                );
                fill_packet(c1, self.epoch, SERVER_VERSION, &mut self.random);
                imprint_digest(c1, &SERVER_PARTIAL);
                self.random.fill(s2);
                sign(s2, &signature_key(&SERVER_FULL, &digest));
                self.kind = HandshakeKind::Digest { scheme };
            }
            None => {
                debug!("handshake: no client digest: plain reply");
                // S2 = C1 echo (spec §5.2.4), copied before S1 overwrites C1.
                copy_in(s2, c1);
                fill_packet(c1, self.epoch, [0; 4], &mut self.random);
                self.kind = HandshakeKind::Plain;
            }
        }
        // S0: C0 was checked to be RTMP_VERSION and is still in place, but say it explicitly.
        if let Some(s0) = s0_c1.first_mut() {
            *s0 = RTMP_VERSION;
        }
        self.buffer.queue(BUFFER_SIZE);
    }

    /// Bytes to send to the client (S0+S1+S2 once C0+C1 are in; empty before and after).
    pub fn transmit(&self) -> &[u8] {
        self.buffer.pending()
    }

    /// Marks the first `n` bytes of [`transmit`](Self::transmit) as sent (clamped to its length).
    pub fn advance(&mut self, n: usize) {
        self.buffer.advance(n);
    }

    /// Whether C2 has been received. [`transmit`](Self::transmit) may still hold reply bytes
    /// (a client may send C2 before reading all of S2): send them before dropping the handshake.
    pub fn is_complete(&self) -> bool {
        self.received == INPUT_SIZE
    }

    /// Which reply was sent: `Digest { scheme }` with where the C1 digest was found, else `Plain`
    /// (also before C1 is complete).
    pub fn kind(&self) -> HandshakeKind {
        self.kind
    }
}

/// The client side: sends C0+C1, reads S0+S1+S2, then sends C2 (as ffmpeg and gst do: C2 only
/// after S2, which every server sends together with S1).
///
/// With `digest`, C1 carries ffmpeg's version 9.0.124.2 and a scheme-0 digest under the player key;
/// when S1 then announces a version and carries a valid digest (server key, scheme 1 then 0), C2 is
/// random data signed with HMAC(player key, S1 digest) like ffmpeg's `rtmp_handshake()`, and S2's
/// signature is checked. Otherwise C2 echoes S1. A failed check does not abort the handshake (an
/// RTMP server does not check C2 either); it is reported by
/// [`server_digest_ok`](Self::server_digest_ok) and [`server_signature_ok`](Self::server_signature_ok).
///
/// `receive` takes nothing while C0+C1 is still waiting in [`transmit`](Self::transmit): the
/// buffer that held C1 then receives S1, and no server can answer a C1 it has not been sent.
pub struct ClientHandshake {
    buffer: Buffer,
    /// Bytes of S0+S1+S2 consumed so far, up to `INPUT_SIZE`.
    received: usize,
    random: Expander,
    /// The digest imprinted in our C1 (digest mode only).
    c1_digest: Option<[u8; DIGEST_SIZE]>,
    kind: HandshakeKind,
    server_digest_ok: Option<bool>,
    server_signature_ok: Option<bool>,
    error: Option<HandshakeError>,
}

impl ClientHandshake {
    /// A client handshake with C0+C1 queued; `epoch` goes into C1's time field, `entropy` seeds
    /// the random fields, `digest` selects a digest C1 (as ffmpeg sends) over a plain one (as
    /// librtmp sends).
    pub fn new(epoch: u32, entropy: [u8; 32], digest: bool) -> Self {
        let mut client = Self {
            buffer: Buffer::new(),
            received: 0,
            random: Expander {
                seed: entropy,
                counter: 0,
            },
            c1_digest: None,
            kind: HandshakeKind::Plain,
            server_digest_ok: None,
            server_signature_ok: None,
            error: None,
        };
        let (c0, rest) = client.buffer.bytes.split_at_mut(1);
        let c1 = rest.get_mut(..C1_SIZE).unwrap_or_default();
        c0.fill(RTMP_VERSION);
        let version = if digest { CLIENT_VERSION } else { [0; 4] };
        fill_packet(c1, epoch, version, &mut client.random);
        if digest {
            client.c1_digest = Some(imprint_digest(c1, &PLAYER_PARTIAL));
            client.kind = HandshakeKind::Digest {
                scheme: DigestScheme::Zero,
            };
        }
        client.buffer.queue(FIRST_SIZE);
        client
    }

    /// Takes bytes from the server; returns how many were used (never past S2; `Ok(0)` while
    /// C0+C1 is unsent and once complete). A wrong S0 version is an error, repeated on every
    /// later call.
    pub fn receive(&mut self, input: &[u8]) -> Result<usize, HandshakeError> {
        if let Some(error) = self.error {
            return Err(error);
        }
        if self.is_complete() || !self.buffer.pending().is_empty() {
            return Ok(0);
        }
        let mut used = 0;
        if self.received == 0 {
            match input.first() {
                None => return Ok(0),
                Some(&RTMP_VERSION) => {}
                Some(&version) => {
                    warn!("handshake: server answered RTMP version {}", version);
                    self.error = Some(HandshakeError::UnsupportedVersion(version));
                    return Err(HandshakeError::UnsupportedVersion(version));
                }
            }
            self.received = 1;
            used = 1;
        }
        // S1 lands at 0..1536 and S2 at 1536..3072: stream position p is buffer index p - 1.
        let dst = self.buffer.bytes.get_mut(self.received - 1..INPUT_SIZE - 1);
        let n = copy_in(
            dst.unwrap_or_default(),
            input.get(used..).unwrap_or_default(),
        );
        self.received += n;
        used += n;
        if self.is_complete() {
            self.respond();
        }
        Ok(used)
    }

    /// Checks S1/S2 and queues C2 at the start of the buffer (where S1 is).
    fn respond(&mut self) {
        let (s1, rest) = self.buffer.bytes.split_at_mut(C1_SIZE);
        let s2 = rest.get(..C1_SIZE).unwrap_or_default();
        self.kind = HandshakeKind::Plain;
        if let (Some(c1_digest), true) = (self.c1_digest, has_version(s1)) {
            match find_digest(s1, &SERVER_PARTIAL) {
                Some((scheme, s1_digest)) => {
                    let s2_key = signature_key(&SERVER_FULL, &c1_digest);
                    let signature_ok = signature_valid(s2, &s2_key);
                    debug!(
                        "handshake: server digest at scheme {:?}, S2 signature ok: {:?}",
                        scheme, signature_ok
                    );
                    self.server_digest_ok = Some(true);
                    self.server_signature_ok = Some(signature_ok);
                    self.random.fill(s1);
                    sign(s1, &signature_key(&PLAYER_FULL, &s1_digest));
                    self.kind = HandshakeKind::Digest { scheme };
                }
                None => {
                    warn!("handshake: server S1 announces a version but has no valid digest");
                    self.server_digest_ok = Some(false);
                }
            }
        }
        // Plain: C2 = S1 echo (spec §5.2.4), which is already in place.
        self.buffer.queue(C1_SIZE);
    }

    /// Bytes to send to the server: C0+C1 first, C2 once S0+S1+S2 are in.
    pub fn transmit(&self) -> &[u8] {
        self.buffer.pending()
    }

    /// Marks the first `n` bytes of [`transmit`](Self::transmit) as sent (clamped to its length).
    pub fn advance(&mut self, n: usize) {
        self.buffer.advance(n);
    }

    /// Whether S0+S1+S2 have been received and C2 is queued (send [`transmit`](Self::transmit)
    /// until empty before speaking RTMP chunks).
    pub fn is_complete(&self) -> bool {
        self.received == INPUT_SIZE
    }

    /// `Digest { scheme }` (scheme of the server's S1 digest) once a digest C2 was queued, `Plain`
    /// once C2 echoes S1; before S1 arrives, the form of our C1 (`Digest { scheme: Zero }` or
    /// `Plain`).
    pub fn kind(&self) -> HandshakeKind {
        self.kind
    }

    /// `Some(true)` when the server's S1 carried a valid digest, `Some(false)` when it announced a
    /// version without one (ffmpeg would give up here), `None` when not checked (plain client,
    /// plain S1, or S1 not received yet).
    pub fn server_digest_ok(&self) -> Option<bool> {
        self.server_digest_ok
    }

    /// Whether S2 ended in the HMAC keyed with our C1 digest (ffmpeg: "Signature mismatch"
    /// otherwise); `None` when not checked (see [`server_digest_ok`](Self::server_digest_ok)).
    pub fn server_signature_ok(&self) -> Option<bool> {
        self.server_signature_ok
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(s: &str) -> [u8; 32] {
        let mut out = [0u8; 32];
        for (i, byte) in out.iter_mut().enumerate() {
            *byte = u8::from_str_radix(&s[2 * i..2 * i + 2], 16).unwrap();
        }
        out
    }

    /// RFC 4231 test cases 1 (short key) and 6 (131-byte key, hashed first), with the key split
    /// into parts as the handshake keys are.
    #[test]
    fn hmac_matches_rfc4231() {
        let key = [0x0b; 20];
        let expected = hex("b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7");
        assert_eq!(hmac(&[&key[..7], &key[7..]], &[b"Hi ", b"There"]), expected);

        let key = [0xaa; 131];
        let message = b"Test Using Larger Than Block-Size Key - Hash Key First";
        let expected = hex("60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54");
        assert_eq!(hmac(&[&key[..100], &key[100..]], &[message]), expected);
    }

    #[test]
    fn key_lengths_are_those_of_nginx_and_ffmpeg() {
        let len = |key: &Key<'_>| key.iter().map(|p| p.len()).sum::<usize>();
        assert_eq!(
            (len(&PLAYER_PARTIAL), len(&PLAYER_FULL)),
            (30, 62),
            "ffmpeg PLAYER_KEY_OPEN_PART_LEN, sizeof rtmp_player_key"
        );
        assert_eq!(
            (len(&SERVER_PARTIAL), len(&SERVER_FULL)),
            (36, 68),
            "ffmpeg SERVER_KEY_OPEN_PART_LEN, sizeof rtmp_server_key"
        );
    }

    #[test]
    fn digest_offsets_stay_inside_their_half() {
        let mut packet = [0u8; C1_SIZE];
        assert_eq!(DigestScheme::Zero.offset(&packet), 12);
        assert_eq!(DigestScheme::One.offset(&packet), 776);
        packet[8..12].fill(0xFF);
        packet[772..776].fill(0xFF);
        // 1020 % 728 = 292
        assert_eq!(DigestScheme::Zero.offset(&packet), 292 + 12);
        assert_eq!(DigestScheme::One.offset(&packet), 292 + 776);
        // The largest possible offset: sum 727.
        packet[8..12].copy_from_slice(&[255, 255, 217, 0]);
        assert_eq!(DigestScheme::Zero.offset(&packet), 739);
        assert!(739 + DIGEST_SIZE <= DigestScheme::One.base());
    }

    #[test]
    fn expander_is_sha256_counter_mode() {
        let seed = [7u8; 32];
        let mut random = Expander { seed, counter: 0 };
        let mut out = [0u8; 40];
        random.fill(&mut out);
        let block0: [u8; 32] = Sha256::new()
            .chain_update(seed)
            .chain_update(0u32.to_be_bytes())
            .finalize()
            .into();
        let block1: [u8; 32] = Sha256::new()
            .chain_update(seed)
            .chain_update(1u32.to_be_bytes())
            .finalize()
            .into();
        assert_eq!(out[..32], block0);
        assert_eq!(out[32..], block1[..8]);
        random.fill(&mut out[..1]);
        assert_ne!(
            out[0], block0[0],
            "the counter moves on, fields never repeat"
        );
    }

    #[test]
    fn imprinted_digest_is_found_at_scheme_zero_only_with_its_key() {
        let mut random = Expander {
            seed: [1; 32],
            counter: 0,
        };
        let mut packet = [0u8; C1_SIZE];
        fill_packet(&mut packet, 5, CLIENT_VERSION, &mut random);
        let digest = imprint_digest(&mut packet, &PLAYER_PARTIAL);
        assert_eq!(
            find_digest(&packet, &PLAYER_PARTIAL),
            Some((DigestScheme::Zero, digest))
        );
        assert_eq!(find_digest(&packet, &SERVER_PARTIAL), None);
    }
}
