//! The board example for a bare-metal Cortex-M0 (`thumbv6m-none-eabi`): no `std`, no allocator,
//! every buffer in `.bss`. `ci/run.sh board` builds it with `-Zbuild-std=core` (so `alloc` does not
//! exist) and prints its size.
//!
//! What a port replaces (docs/porting.md): [`Eth`], the network device (the one trait
//! implementation: the MAC's DMA descriptors, or the Wi-Fi chip's driver), the clock ([`millis`]:
//! a hardware timer) and the entropy ([`entropy`]: the chip's random number generator), plus a
//! runtime crate for the vector table and memory map (cortex-m-rt, embassy, esp-hal). This
//! placeholder device receives nothing and drops every frame, so the binary links everything the
//! example needs but serves nobody.
#![no_std]
#![no_main]

use core::hint::black_box;
use core::panic::PanicInfo;
use core::ptr::addr_of_mut;

use smoltcp::iface::SocketStorage;
use smoltcp::phy::{Device, DeviceCapabilities, Medium, RxToken, TxToken};
use smoltcp::wire::{IpAddress, IpCidr};
use zerocast_board::{Board, Buffers, NetConfig, Sockets, PLAYERS};
use zerocast_core::time::Instant;

/// The board's Ethernet frame size (MTU 1500 + 14 bytes of header).
const FRAME: usize = 1514;

/// The network device: the part of the port that talks to hardware.
struct Eth {
    /// Where smoltcp builds a frame to send; a real driver hands it to its DMA.
    tx: [u8; FRAME],
}

/// A received frame (a real driver: a filled DMA buffer).
struct Rx<'a>(&'a [u8]);

/// Room for a frame to send.
struct Tx<'a>(&'a mut [u8; FRAME]);

impl RxToken for Rx<'_> {
    fn consume<R, F: FnOnce(&[u8]) -> R>(self, f: F) -> R {
        f(self.0)
    }
}

impl TxToken for Tx<'_> {
    fn consume<R, F: FnOnce(&mut [u8]) -> R>(self, len: usize, f: F) -> R {
        let frame = &mut self.0[..len.min(FRAME)];
        let result = f(frame);
        // A real driver starts the transmission here.
        black_box(&frame);
        result
    }
}

impl Device for Eth {
    type RxToken<'a> = Rx<'a>;
    type TxToken<'a> = Tx<'a>;

    fn receive(
        &mut self,
        _timestamp: smoltcp::time::Instant,
    ) -> Option<(Self::RxToken<'_>, Self::TxToken<'_>)> {
        // A real driver returns the next received frame, if any, and room to answer it.
        black_box(None::<()>).map(|()| (Rx(&[]), Tx(&mut self.tx)))
    }

    fn transmit(&mut self, _timestamp: smoltcp::time::Instant) -> Option<Self::TxToken<'_>> {
        Some(Tx(&mut self.tx))
    }

    fn capabilities(&self) -> DeviceCapabilities {
        let mut caps = DeviceCapabilities::default();
        caps.medium = Medium::Ethernet;
        caps.max_transmission_unit = FRAME;
        caps
    }
}

/// The clock: milliseconds since boot (a real board reads a timer).
fn millis(ticks: &mut u64) -> Instant {
    *ticks = black_box(*ticks + 1);
    Instant::from_millis(*ticks)
}

/// Entropy for the handshake (a real board reads its RNG: the RP2040's ROSC, the ESP32's RNG).
fn entropy() -> [u8; 32] {
    black_box([0x5a; 32])
}

static mut BUFFERS: Buffers = Buffers::new();
static mut SOCKETS: Sockets<'static> = [SocketStorage::EMPTY; PLAYERS];

/// The entry symbol the linker is pointed at (`build.rs`).
#[no_mangle]
pub extern "C" fn board_main() -> ! {
    // SAFETY: the entry runs once, and nothing else names these statics: these are the only
    // references to them for the life of the program.
    let (buffers, sockets) = unsafe { (&mut *addr_of_mut!(BUFFERS), &mut *addr_of_mut!(SOCKETS)) };
    let mut eth = Eth { tx: [0; FRAME] };
    let net = NetConfig {
        mac: [0x02, 0x00, 0x00, 0x5a, 0x43, 0x01],
        address: IpCidr::new(IpAddress::v4(192, 0, 2, 2), 24),
        port: 1935,
        seed: u64::from_le_bytes([0x5a; 8]),
    };
    let mut ticks = 0;
    let Ok(mut board) = Board::new(buffers, sockets, &mut eth, &net, millis(&mut ticks)) else {
        halt()
    };
    loop {
        match board.poll(&mut eth, millis(&mut ticks), entropy) {
            // A real board sleeps until `wake` (WFI) or a frame arrives.
            Ok(wake) => {
                black_box((wake, board.playing(), board.closed()));
            }
            Err(_) => halt(),
        }
    }
}

fn halt() -> ! {
    loop {
        black_box(());
    }
}

#[panic_handler]
fn panic(_info: &PanicInfo) -> ! {
    halt()
}
