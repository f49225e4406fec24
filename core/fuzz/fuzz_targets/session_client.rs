//! `ClientSession` driven by a hostile server: S0+S1+S2, chunk stream and replies in random
//! splits, with random partial sends and a moving clock.
//!
//! Input: byte 0 seeds the split sizes, the sends and the clock; byte 1 picks play or publish and
//! the digest handshake; the rest is what the server sends (the digest checks pass under
//! `cfg(fuzzing)`). Checks, until the session returns an error:
//! - C0+C1 are queued first, and nothing is read before they are sent;
//! - `receive` consumes no more than it is given and makes progress whenever it reports an
//!   event; the transmit buffer never holds more than its capacity;
//! - `Playing` / `Publishing` leave the session streaming, and a publisher can then send audio
//!   and metadata (`Ok` or the buffer-full error); before that, and for a player, those calls
//!   are `InvalidState` and send nothing.
#![no_main]

use libfuzzer_sys::fuzz_target;
use zerocast_core::session::{ClientConfig, ClientEvent, ClientRole, ClientSession, SessionError};
use zerocast_core::time::Instant;
use zerocast_core_fuzz::{split_with, Rng};

const TX: usize = 8192;
type Client = ClientSession<16384, TX>;

/// `"onMetaData"` + an empty ECMA array, as AMF0.
const METADATA: &[u8] = &[
    0x02, 0x00, 0x0A, b'o', b'n', b'M', b'e', b't', b'a', b'D', b'a', b't', b'a', 0x08, 0x00, 0x00,
    0x00, 0x00, 0x00, 0x00, 0x09,
];

/// Sends media as a publishing host would; `InvalidState` (and nothing sent) unless publishing.
fn send_media(client: &mut Client, role: ClientRole, rng: &mut Rng) -> Result<(), SessionError> {
    let publishing = client.is_streaming() && role == ClientRole::Publish;
    let before = client.transmit().len();
    let audio = [0x3F; 64];
    let result = if rng.below(2) == 0 {
        client.send_audio(rng.next_u32(), &audio[..rng.below(audio.len())])
    } else {
        client.send_metadata(METADATA)
    };
    match result {
        Ok(()) => assert!(publishing, "media accepted while not publishing"),
        Err(SessionError::InvalidState) => {
            assert!(!publishing, "publisher refused media");
            assert_eq!(client.transmit().len(), before);
        }
        Err(e) => return Err(e),
    }
    Ok(())
}

fn drive<'a>(
    client: &mut Client,
    role: ClientRole,
    pieces: impl IntoIterator<Item = &'a [u8]>,
    rng: &mut Rng,
) -> Result<(), SessionError> {
    let mut now = Instant::from_millis(0);
    let mut pending = Vec::new();
    for piece in pieces {
        // Mostly a few ms per read; now and then a stall long enough for the idle ping, the
        // handshake deadline or the idle timeout.
        let step = if rng.below(64) == 0 { 20_000 } else { 20 };
        now = now.saturating_add_millis(rng.below(step) as u64);
        if client.poll_timeout().is_some_and(|t| t <= now) {
            client.handle_timeout(now)?;
        }
        pending.extend_from_slice(piece);
        for _ in 0..=pending.len() {
            let received = client.receive(now, &pending)?;
            let consumed = received.consumed;
            assert!(consumed <= pending.len());
            // Some(true): the stream started.
            let event = received
                .event
                .map(|e| matches!(e, ClientEvent::Playing | ClientEvent::Publishing));
            assert!(consumed > 0 || event.is_none(), "event without progress");
            pending.drain(..consumed);
            match event {
                Some(true) => assert!(client.is_streaming()),
                Some(false) => {}
                None => break,
            }
            if rng.below(4) == 0 {
                send_media(client, role, rng)?;
            }
            assert!(client.transmit().len() <= TX);
        }
        let n = rng.below(client.transmit().len() + 1);
        client.advance(n);
    }
    Ok(())
}

fuzz_target!(|data: &[u8]| {
    let [seed, mode, input @ ..] = data else {
        return;
    };
    let role = if mode & 1 == 0 {
        ClientRole::Play
    } else {
        ClientRole::Publish
    };
    let config = ClientConfig {
        app: "live",
        tc_url: "rtmp://127.0.0.1/live",
        stream: "a",
        role,
        digest: mode & 2 != 0,
        chunk_size: 4096,
        max_message: 16384,
        idle_timeout_ms: 60_000,
    };
    let mut client =
        Box::new(Client::new(Instant::from_millis(0), [0; 32], &config).expect("valid config"));
    assert_eq!(client.transmit().len(), 1537, "C0+C1 first");
    // Nothing is read while C0+C1 wait to be sent.
    let received = client
        .receive(Instant::from_millis(0), input)
        .map(|r| r.consumed);
    assert!(matches!(received, Ok(0)), "{received:?}");
    client.advance(1537);
    // The sends and the clock draw from their own sequence, not the split's.
    let pieces = split_with(*seed, input);
    let result = drive(&mut client, role, pieces, &mut Rng::new(!*seed));
    assert_ne!(result, Err(SessionError::InvalidState));
});
