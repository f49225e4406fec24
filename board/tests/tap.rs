//! The board example over smoltcp on a TAP device, played by ffmpeg and rtmpdump at the same time.
//!
//! The test makes a network namespace of its own with a TAP device in it (`common`), starts
//! `zerocast-board-tap` there as 192.0.2.2 (smoltcp's side: it answers ARP, TCP and RTMP itself),
//! and runs the players in the namespace against it. Checked by content: 440 Hz, the duration
//! asked for, no silence in the tone.

#[path = "../../core/tests/support/mod.rs"]
mod support;

mod common;

use std::process::Stdio;
use std::time::Duration;

use common::{play_both, require_namespace_and_players, Netns};
use support::scratch_dir;

/// The board's address on the namespace's LAN (`common`).
const BOARD: &str = "192.0.2.2/24";

#[test]
fn ffmpeg_and_rtmpdump_play_the_tone_from_smoltcp_on_a_tap_device() {
    if !require_namespace_and_players() {
        return;
    }
    let dir = scratch_dir("board-tap");
    let ns = Netns::create("board").unwrap();
    let board = ns.spawn(
        &dir,
        "board",
        env!("CARGO_BIN_EXE_zerocast-board-tap"),
        &["tap0", BOARD, "60"],
        Stdio::piped(),
    );
    play_both(&ns, &dir, board, Duration::from_secs(10), 3);
}
