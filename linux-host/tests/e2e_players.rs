//! End to end: real RTMP players (ffmpeg, rtmpdump, VLC, GStreamer rtmpsrc and rtmp2src) play a
//! server's 440 Hz test tone for 8 s; what each decoded must be 440 Hz ± 2 %, last as long
//! as it played ± 5 %, and have no gap longer than one 20 ms period and no phase jump.
//!
//! The server under test is chosen by `common::server::start_server(kind)`:
//! - `nginx_*_baseline`: nginx-rtmp fed by an ffmpeg publisher, the setup zerocast replaces.
//!   These are **harness self-tests**: they prove the players, timing and analysis are right on a
//!   known-good server, so a zerocast failure means zerocast.
//! - `zerocast_*`: the zerocast binary with its tone source, the server under test.
//!
//! Needs ffmpeg, rtmpdump, cvlc, gst-launch-1.0 (+ plugins) and nginx with libnginx-mod-rtmp; a
//! missing tool skips the test, or fails it when `CI` is set. Set `ZEROCAST_E2E_KEEP=1` to keep
//! the recordings; run with `--nocapture` to see the measured numbers.

mod common;

use common::check::check_all;
use common::matrix::{label, play_one, PLAY};
use common::players::{play_concurrently, Player};
use common::server::{start_server, Codec, ServerKind};
use common::{HarnessError, TempDir};

/// Players in the fan-out test.
const CONCURRENT_PLAYERS: usize = 10;

/// [`CONCURRENT_PLAYERS`] low-delay ffmpeg players at once, each checked like a single one.
fn play_many(kind: ServerKind) -> Result<(), HarnessError> {
    let label = format!("{}-concurrent", label(kind));
    TempDir::run(&label, |dir| {
        let Some(mut server) = start_server(kind, dir)? else {
            return Ok(());
        };
        let players = dir.join("players");
        let player = Player::FfmpegLowDelay;
        let Some(recordings) =
            play_concurrently(player, &server, PLAY, CONCURRENT_PLAYERS, &players)?
        else {
            return Ok(());
        };
        server.check_alive()?;
        check_all(&label, recordings, &server)?;
        server.stop()
    })
}

/// One test per player plus the fan-out test, in a module named for the server.
macro_rules! player_tests {
    ($module:ident, $kind:expr $(, #[$attr:meta])?) => {
        mod $module {
            use super::*;

            $(#[$attr])?
            #[test]
            fn ffmpeg() -> Result<(), HarnessError> {
                play_one($kind, Player::Ffmpeg)
            }

            $(#[$attr])?
            #[test]
            fn ffmpeg_low_delay() -> Result<(), HarnessError> {
                play_one($kind, Player::FfmpegLowDelay)
            }

            $(#[$attr])?
            #[test]
            fn rtmpdump() -> Result<(), HarnessError> {
                play_one($kind, Player::Rtmpdump)
            }

            $(#[$attr])?
            #[test]
            fn vlc() -> Result<(), HarnessError> {
                play_one($kind, Player::Vlc)
            }

            $(#[$attr])?
            #[test]
            fn gst_rtmpsrc() -> Result<(), HarnessError> {
                play_one($kind, Player::GstRtmpsrc)
            }

            $(#[$attr])?
            #[test]
            fn gst_rtmp2src() -> Result<(), HarnessError> {
                play_one($kind, Player::GstRtmp2src)
            }

            $(#[$attr])?
            #[test]
            fn ten_concurrent_ffmpeg() -> Result<(), HarnessError> {
                play_many($kind)
            }
        }
    };
}

// Harness self-tests against the baseline server.
player_tests!(nginx_pcm_baseline, ServerKind::Nginx { codec: Codec::Pcm });
player_tests!(
    nginx_adpcm_baseline,
    ServerKind::Nginx {
        codec: Codec::Adpcm
    }
);

// The server under test.
player_tests!(zerocast_pcm, ServerKind::Zerocast { codec: Codec::Pcm });
player_tests!(
    zerocast_adpcm,
    ServerKind::Zerocast {
        codec: Codec::Adpcm
    }
);
