//! `ServerHandshake` and `ClientHandshake` fed a peer's bytes in random splits.
//!
//! Input: byte 0 seeds the split sizes and how much of `transmit()` each step sends, byte 1
//! picks the client's digest mode, the rest is what the peer sends (C0+C1+C2 to the server,
//! S0+S1+S2 to the client, and whatever follows). Under `cfg(fuzzing)` the digest checks pass,
//! so the digest replies are reached without forging HMACs. Checks:
//! - `receive` uses no more than it is given and never a byte past the 3073 of the handshake;
//!   the reply, completion and error are the same for every split and every pattern of partial
//!   sends as for the input fed whole;
//! - server: nothing to send before C0+C1 are in, then exactly S0+S1+S2 (3073 bytes): S0 = 3, a
//!   plain reply echoes C1 as S2 with zero version bytes in S1, a digest reply has nginx's
//!   version `0D 0E 0A 0D`;
//! - client: C0+C1 first (and nothing is read until it is sent), C2 (1536 bytes) once S2 is in,
//!   echoing S1 unless the digest handshake ran.
#![no_main]

use libfuzzer_sys::fuzz_target;
use zerocast_core::handshake::{
    ClientHandshake, HandshakeError, HandshakeKind, ServerHandshake, C1_SIZE, RTMP_VERSION,
};
use zerocast_core_fuzz::{split_with, Rng};

const TOTAL: usize = 1 + 2 * C1_SIZE;

/// The sans-IO surface both handshakes share.
trait Machine {
    fn receive(&mut self, input: &[u8]) -> Result<usize, HandshakeError>;
    fn transmit(&self) -> &[u8];
    fn advance(&mut self, n: usize);
    fn is_complete(&self) -> bool;
}

macro_rules! machine {
    ($t:ty) => {
        impl Machine for $t {
            fn receive(&mut self, input: &[u8]) -> Result<usize, HandshakeError> {
                <$t>::receive(self, input)
            }
            fn transmit(&self) -> &[u8] {
                <$t>::transmit(self)
            }
            fn advance(&mut self, n: usize) {
                <$t>::advance(self, n)
            }
            fn is_complete(&self) -> bool {
                <$t>::is_complete(self)
            }
        }
    };
}
machine!(ServerHandshake);
machine!(ClientHandshake);

/// What a handshake did with one peer byte stream.
#[derive(Debug, PartialEq)]
struct Outcome {
    sent: Vec<u8>,
    used: usize,
    complete: bool,
    error: Option<HandshakeError>,
}

/// Feeds `pieces` the way a session does, sending a random part of `transmit()` between calls
/// (all of it when `rng` is `None`), and the rest at the end.
fn drive<'a>(
    machine: &mut dyn Machine,
    pieces: impl IntoIterator<Item = &'a [u8]>,
    mut rng: Option<Rng>,
) -> Outcome {
    let mut out = Outcome {
        sent: Vec::new(),
        used: 0,
        complete: false,
        error: None,
    };
    let mut pending = Vec::new();
    for piece in pieces {
        let pending_tx = machine.transmit().len();
        let n = rng.as_mut().map_or(pending_tx, |r| r.below(pending_tx + 1));
        out.sent.extend_from_slice(&machine.transmit()[..n]);
        machine.advance(n);
        pending.extend_from_slice(piece);
        match machine.receive(&pending) {
            Ok(used) => {
                assert!(used <= pending.len());
                pending.drain(..used);
                out.used += used;
                assert!(out.used <= TOTAL, "used {} bytes", out.used);
            }
            Err(e) => {
                out.error = Some(e);
                // Sticky: the same error again, and nothing is queued after it.
                assert_eq!(machine.receive(&pending), Err(e));
                break;
            }
        }
        assert_eq!(machine.is_complete(), out.used == TOTAL);
    }
    // The input has ended: send everything, read what was held back, send what that queued.
    send_all(machine, &mut out.sent);
    if out.error.is_none() {
        match machine.receive(&pending) {
            Ok(used) => out.used += used,
            Err(e) => out.error = Some(e),
        }
        send_all(machine, &mut out.sent);
    }
    out.complete = machine.is_complete();
    out
}

fn send_all(machine: &mut dyn Machine, sent: &mut Vec<u8>) {
    let n = machine.transmit().len();
    sent.extend_from_slice(machine.transmit());
    machine.advance(n);
    assert!(machine.transmit().is_empty());
}

fn server(seed: u8, input: &[u8]) {
    let whole = drive(&mut ServerHandshake::new(7, [1; 32]), [input], None);
    let mut hs = ServerHandshake::new(7, [1; 32]);
    let split = drive(&mut hs, split_with(seed, input), Some(Rng::new(!seed)));
    assert_eq!(whole, split, "server result depends on the split");
    if whole.error.is_some() {
        assert!(whole.sent.is_empty(), "a reply was sent to a bad C0");
        return;
    }
    let c1_in = whole.used > C1_SIZE;
    assert_eq!(whole.used, input.len().min(TOTAL));
    if !c1_in {
        assert!(whole.sent.is_empty(), "reply before C1");
        return;
    }
    assert_eq!(whole.sent.len(), TOTAL);
    assert_eq!(whole.sent[0], RTMP_VERSION);
    let (s1, s2) = whole.sent[1..].split_at(C1_SIZE);
    match hs.kind() {
        HandshakeKind::Plain => {
            assert_eq!(s1[4..8], [0; 4]);
            assert_eq!(s2, &input[1..=C1_SIZE], "S2 must echo C1");
        }
        HandshakeKind::Digest { .. } => assert_eq!(s1[4..8], [0x0D, 0x0E, 0x0A, 0x0D]),
    }
}

fn client(seed: u8, digest: bool, input: &[u8]) {
    let mut hs = ClientHandshake::new(7, [2; 32], digest);
    assert_eq!(hs.transmit().len(), 1 + C1_SIZE);
    assert_eq!(hs.transmit()[0], RTMP_VERSION);
    // Nothing is read while C0+C1 wait to be sent.
    assert_eq!(hs.receive(input), Ok(0));
    let mut whole_hs = ClientHandshake::new(7, [2; 32], digest);
    let whole = drive(&mut whole_hs, [input], None);
    let split = drive(&mut hs, split_with(seed, input), Some(Rng::new(!seed)));
    assert_eq!(whole, split, "client result depends on the split");
    if whole.error.is_some() {
        return;
    }
    assert_eq!(whole.used, input.len().min(TOTAL));
    let c2 = &whole.sent[1 + C1_SIZE..];
    if !whole.complete {
        assert!(c2.is_empty(), "C2 before S2");
        return;
    }
    assert_eq!(c2.len(), C1_SIZE);
    if hs.kind() == HandshakeKind::Plain {
        assert_eq!(c2, &input[1..=C1_SIZE], "C2 must echo S1");
    }
}

fuzz_target!(|data: &[u8]| {
    let [seed, mode, input @ ..] = data else {
        return;
    };
    server(*seed, input);
    client(*seed, mode & 1 != 0, input);
});
