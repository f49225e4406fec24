//! `ServerSession` driven by a hostile client: handshake, chunk stream and commands in random
//! splits, random partial sends, a clock that moves on between reads, and a host that accepts
//! every play and publish.
//!
//! Input: byte 0 seeds the split sizes, the sends and the clock; the rest is what the client
//! sends, handshake included (the digest check passes under `cfg(fuzzing)`). Checks, until the
//! session returns an error (which closes a real connection):
//! - `receive` consumes no more than it is given and makes progress whenever it reports an event,
//!   so the host's read-until-idle loop ends;
//! - the transmit buffer never holds more than its capacity;
//! - a play or publish request is accepted at once (`Ok`, or the buffer-full error that closes
//!   the connection), after which the session says it is playing / publishing;
//! - decisions asked for when no request is pending are `InvalidState` and send nothing;
//! - the names in events fit [`MAX_NAME`].
#![no_main]

use libfuzzer_sys::fuzz_target;
use zerocast_core::session::{Event, Refusal, ServerConfig, ServerSession, SessionError, MAX_NAME};
use zerocast_core::time::Instant;
use zerocast_core_fuzz::{split, Rng};

const TX: usize = 8192;
type Server = ServerSession<16384, TX>;

/// The event kinds the host acts on, without the borrow of the session.
enum Seen {
    Play,
    Publish,
    Other,
}

/// One decision made when no request is pending: it must be refused and send nothing.
fn stray_decision(server: &mut Server, which: usize) {
    let before = server.transmit().len();
    let result = match which {
        0 => server.accept_play(),
        1 => server.accept_publish(),
        2 => server.refuse_play(Refusal::Denied),
        _ => server.refuse_publish(Refusal::BadName),
    };
    assert_eq!(result, Err(SessionError::InvalidState));
    assert_eq!(server.transmit().len(), before);
}

/// Runs the session over the client's bytes; `Err` ends the connection.
fn drive(server: &mut Server, data: &[u8], rng: &mut Rng) -> Result<(), SessionError> {
    let mut now = Instant::from_millis(0);
    let mut pending = Vec::new();
    for piece in split(data) {
        // Mostly a few ms per read; now and then a stall long enough for the idle ping, the
        // handshake deadline or the idle timeout.
        let step = if rng.below(64) == 0 { 20_000 } else { 20 };
        now = now.saturating_add_millis(rng.below(step) as u64);
        if server.poll_timeout().is_some_and(|t| t <= now) {
            server.handle_timeout(now)?;
        }
        pending.extend_from_slice(piece);
        // Each round either consumes input or ends, so this bounds the loop.
        for _ in 0..=pending.len() {
            let received = server.receive(now, &pending)?;
            let consumed = received.consumed;
            assert!(consumed <= pending.len());
            let seen = match received.event {
                Some(Event::PlayRequested { app, name })
                | Some(Event::PublishRequested { app, name })
                    if app.len() > MAX_NAME || name.len() > MAX_NAME =>
                {
                    panic!("name longer than {MAX_NAME}")
                }
                Some(Event::PlayRequested { .. }) => Some(Seen::Play),
                Some(Event::PublishRequested { .. }) => Some(Seen::Publish),
                Some(Event::Connected { app, .. }) => {
                    assert!(app.len() <= MAX_NAME);
                    Some(Seen::Other)
                }
                Some(_) => Some(Seen::Other),
                None => None,
            };
            assert!(consumed > 0 || seen.is_none(), "event without progress");
            pending.drain(..consumed);
            match seen {
                Some(Seen::Play) => {
                    server.accept_play()?;
                    assert!(server.is_playing());
                }
                Some(Seen::Publish) => {
                    server.accept_publish()?;
                    assert!(server.is_publishing());
                }
                Some(Seen::Other) => {}
                None => break,
            }
            if rng.below(16) == 0 {
                stray_decision(server, rng.below(4));
            }
            assert!(server.transmit().len() <= TX);
        }
        let n = rng.below(server.transmit().len() + 1);
        server.advance(n);
    }
    Ok(())
}

fuzz_target!(|data: &[u8]| {
    let Some(&seed) = data.first() else {
        return;
    };
    let mut server = Box::new(Server::new(
        Instant::from_millis(0),
        [0; 32],
        &ServerConfig::default(),
    ));
    // The sends and the clock draw from their own sequence, not the split's.
    let result = drive(&mut server, data, &mut Rng::new(!seed));
    // These come from the host's own calls, never from what the peer sent.
    assert!(
        !matches!(
            result,
            Err(SessionError::InvalidState | SessionError::Refused)
        ),
        "{result:?}"
    );
});
