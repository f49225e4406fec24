//! The board example on a Linux TAP device: smoltcp owns the interface's frames, exactly as on a
//! board with an Ethernet MAC, and the kernel on the other side of the TAP device is the LAN.
//!
//! ```sh
//! ip tuntap add dev tap0 mode tap && ip addr add 192.0.2.1/24 dev tap0 && ip link set tap0 up
//! zerocast-board-tap tap0 192.0.2.2/24 60     # then: ffplay rtmp://192.0.2.2/live/audio
//! ```
//!
//! Prints `serving rtmp://ADDRESS:1935/live/audio` once the interface is up, and `playing N`
//! whenever the number of players changes; stops after the given seconds.

use std::fs::File;
use std::io::Read;
use std::os::fd::AsRawFd;
use std::process::ExitCode;
use std::str::FromStr;

use smoltcp::phy::{wait, Medium, TunTapInterface};
use smoltcp::wire::IpCidr;
use zerocast_board::{Board, Buffers, NetConfig, Sockets};
use zerocast_core::time::Instant;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [iface, address, seconds] = &args[..] else {
        eprintln!("usage: zerocast-board-tap IFACE ADDRESS/PREFIX SECONDS");
        return ExitCode::from(2);
    };
    let (Ok(address), Ok(seconds)) = (IpCidr::from_str(address), seconds.parse::<u64>()) else {
        eprintln!("bad address {address:?} or seconds {seconds:?}");
        return ExitCode::from(2);
    };
    match run(iface, address, seconds) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("zerocast-board-tap: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run(iface: &str, address: IpCidr, seconds: u64) -> Result<(), String> {
    let mut device =
        TunTapInterface::new(iface, Medium::Ethernet).map_err(|e| format!("{iface}: {e}"))?;
    let mut urandom = File::open("/dev/urandom").map_err(|e| e.to_string())?;
    let mut entropy = move || {
        let mut bytes = [0u8; 32];
        urandom.read_exact(&mut bytes).map(|()| bytes)
    };
    let seed = entropy().map_err(|e| e.to_string())?;
    let net = NetConfig {
        // A locally administered unicast address.
        mac: [0x02, 0x00, 0x00, 0x5a, 0x43, 0x01],
        address,
        port: 1935,
        seed: u64::from_le_bytes(seed[..8].try_into().unwrap_or_default()),
    };
    let start = std::time::Instant::now();
    let clock = || Instant::from_millis(start.elapsed().as_millis() as u64);
    // Boxed: the buffers are ~70 KiB; a board keeps them in a `static` (see bare.rs).
    let mut buffers = Box::new(Buffers::new());
    let mut sockets: Sockets = Default::default();
    let mut board = Board::new(&mut buffers, &mut sockets, &mut device, &net, clock())
        .map_err(|e| format!("{e:?}"))?;
    println!(
        "serving rtmp://{}:{}/live/audio",
        address.address(),
        net.port
    );
    let mut playing = 0;
    let end = Instant::from_millis(seconds * 1000);
    loop {
        let now = clock();
        if now >= end {
            return Ok(());
        }
        let wake = board
            .poll(&mut device, now, || entropy().unwrap_or_default())
            .map_err(|e| e.to_string())?;
        if board.playing() != playing {
            playing = board.playing();
            println!("playing {playing}");
        }
        let timeout = smoltcp::time::Duration::from_millis(wake.saturating_millis_since(clock()));
        wait(device.as_raw_fd(), Some(timeout)).map_err(|e| e.to_string())?;
    }
}
