//! One server × one player: start the server, play it, check the recording by content (the
//! tests of e2e_players.rs and e2e_codecs.rs are this, for each server, codec and player).

use std::time::Duration;

use super::check::check_all;
use super::players::{play, Player};
use super::server::{start_server, ServerKind};
use super::{HarnessError, TempDir};

/// How long each player plays. The decoded duration must match within 5 %, and what a player
/// cannot receive is the server's RTMP session set-up after the TCP connect (nginx-rtmp: ~170 ms
/// of Nagle/delayed-ACK stalls, protocol-notes §2) plus the message in flight at the stop
/// (ffmpeg's adpcm_swf publisher: 4096 samples, 93 ms). 8 s makes 5 % (400 ms) cover those
/// 263 ms with room for a loaded machine; at 5 s the baseline would sit at the limit.
pub const PLAY: Duration = Duration::from_secs(8);

/// The server and codec, for file names and reports.
pub fn label(kind: ServerKind) -> String {
    let (server, codec) = match kind {
        ServerKind::Nginx { codec } => ("nginx", codec),
        ServerKind::Zerocast { codec } => ("zerocast", codec),
    };
    format!("{server}-{codec:?}").to_lowercase()
}

/// Starts the server `kind`, plays it with `player` for [`PLAY`], and checks the recording and
/// that the server survived and stops on SIGTERM.
pub fn play_one(kind: ServerKind, player: Player) -> Result<(), HarnessError> {
    play_one_for(kind, player, PLAY)
}

/// [`play_one`] for `play` instead of [`PLAY`].
pub fn play_one_for(
    kind: ServerKind,
    player: Player,
    play_for: Duration,
) -> Result<(), HarnessError> {
    let label = format!("{}-{}", label(kind), player.name());
    TempDir::run(&label, |dir| {
        let Some(mut server) = start_server(kind, dir)? else {
            return Ok(());
        };
        let Some(recording) = play(player, &server, play_for, &dir.join("players"))? else {
            return Ok(());
        };
        server.check_alive()?;
        check_all(&label, vec![recording], &server)?;
        server.stop()
    })
}
