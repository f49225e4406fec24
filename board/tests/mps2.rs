//! The firmware for the Arm MPS2 AN385 board (`zerocast-board-mps2`, a Cortex-M3 image) booted in
//! `qemu-system-arm`, its emulated LAN9118 on a TAP device in a network namespace the test makes
//! (`common`), played by ffmpeg and rtmpdump at once for 10 s and checked by content.
//!
//! The image is built for `thumbv7m-none-eabi` by `ci/run.sh board`, which passes its path in
//! `ZEROCAST_BOARD_MPS2_ELF`; without it (or without qemu-system-arm, or root) the test skips,
//! except under `CI`, where it fails. The emulator is stopped by its PID when the test ends.
//!
//! With `ZEROCAST_QEMU_INSN` set to the path of bench/qemu-insn's plugin (built for the host),
//! QEMU counts the instructions the firmware runs, and the test prints them with the emulated
//! time they were spent in (docs/porting.md has the figures).

#[path = "../../core/tests/support/mod.rs"]
mod support;

mod common;

use std::process::Stdio;
use std::time::{Duration, Instant};

use common::{play_both, require_namespace_and_players, Netns};
use support::{available, require, scratch_dir};

#[test]
fn ffmpeg_and_rtmpdump_play_the_tone_from_the_mps2_firmware_in_qemu() {
    let elf = std::env::var("ZEROCAST_BOARD_MPS2_ELF").unwrap_or_default();
    if !available(
        !elf.is_empty(),
        "ZEROCAST_BOARD_MPS2_ELF (ci/run.sh board builds the image)",
    ) || !require("qemu-system-arm", "-version")
        || !require_namespace_and_players()
    {
        return;
    }
    let dir = scratch_dir("board-mps2");
    let ns = Netns::create("mps2").unwrap();
    // Semihosting output (the firmware's log lines) goes to QEMU's stdout; no serial port, no
    // monitor. The NIC is the board's own LAN9118, its host side the namespace's tap0.
    let args = [
        "-M",
        "mps2-an385",
        "-nographic",
        "-monitor",
        "none",
        "-serial",
        "none",
        "-semihosting-config",
        "enable=on,target=native",
        "-nic",
        "tap,ifname=tap0,script=no,downscript=no",
        "-kernel",
        &elf,
    ];
    let plugin = std::env::var("ZEROCAST_QEMU_INSN").unwrap_or_default();
    let count = ["-plugin", &plugin, "-d", "plugin"];
    let args = [&args[..], if plugin.is_empty() { &[] } else { &count }].concat();
    let started = Instant::now();
    let board = ns.spawn(&dir, "qemu", "qemu-system-arm", &args, Stdio::piped());
    let mut board = play_both(&ns, &dir, board, Duration::from_secs(30), 10);
    if !plugin.is_empty() {
        // The plugin prints its count when QEMU exits normally, which it does on SIGINT.
        board.interrupt();
        let ran = started.elapsed().as_secs_f64();
        let status = board.wait(Duration::from_secs(10));
        let log = board.log();
        let total = log
            .split_whitespace()
            .find_map(|w| w.strip_prefix("total="))
            .and_then(|n| n.parse::<u64>().ok());
        let Some(total) = total else {
            panic!("no instruction count from qemu ({status:?}):\n{log}")
        };
        println!(
            "qemu: {total} instructions in {ran:.2} s (boot, then two players for 10 s): {:.2} M per second",
            total as f64 / ran / 1e6
        );
    }
}
