//! zerocast firmware for the Arm MPS2 AN385 board (Cortex-M3, 25 MHz) as QEMU's `mps2-an385`
//! emulates it: the core's board driver ([`zerocast_board::Board`]) over the board's SMSC LAN9118
//! Ethernet controller, serving the 440 Hz tone to up to four RTMP players at
//! `rtmp://192.0.2.2/live/audio`.
//!
//! ```sh
//! qemu-system-arm -M mps2-an385 -nographic -monitor none -serial none \
//!     -semihosting-config enable=on,target=native \
//!     -nic tap,ifname=tap0,script=no,downscript=no -kernel zerocast-board-mps2
//! ```
//!
//! The parts a port replaces (docs/porting.md): start-up is cortex-m-rt's (vector table, `.data`
//! and `.bss`, then [`main`]) with the board's `memory.x`; the clock is the SysTick timer, one
//! interrupt a millisecond ([`Clock`]); the network device is [`lan9118::Lan9118`]; entropy is
//! [`Entropy`]; logs go to the host through Arm semihosting (`serving ...`, `playing N`, the
//! same lines as `zerocast-board-tap`, and after each `playing` line the stack's high-water mark,
//! `stack N`).
#![no_std]
#![no_main]

mod lan9118;

use core::panic::PanicInfo;
use core::ptr::{addr_of, addr_of_mut, read_volatile};
use core::sync::atomic::{AtomicU32, Ordering};

use cortex_m::peripheral::syst::SystClkSource;
use cortex_m::peripheral::SYST;
use cortex_m_rt::{entry, exception, STACK_PAINT_VALUE};
use cortex_m_semihosting::{debug, hprintln};
use smoltcp::iface::SocketStorage;
use smoltcp::wire::{IpAddress, IpCidr};
use zerocast_board::{Board, Buffers, NetConfig, Sockets, PLAYERS};
use zerocast_core::time::Instant;

use lan9118::Lan9118;

/// Where the AN385 maps its LAN9118 (Application Note AN385, "Memory map": 0x4020_0000).
const LAN9118_BASE: usize = 0x4020_0000;
/// The core clock SysTick counts: the AN385's 25 MHz system clock.
const CORE_HZ: u32 = 25_000_000;
/// A locally administered unicast address (as the TAP example's).
const MAC: [u8; 6] = [0x02, 0x00, 0x00, 0x5a, 0x43, 0x01];

/// Milliseconds since the clock started, counted by the SysTick interrupt.
static TICKS: AtomicU32 = AtomicU32::new(0);

#[exception]
fn SysTick() {
    TICKS.fetch_add(1, Ordering::Relaxed);
}

/// The millisecond clock: SysTick reloads every 25 000 core cycles and its interrupt counts;
/// [`Clock::now`] widens the 32-bit count (which wraps after 49 days) to the core's 64 bits.
struct Clock {
    last: u32,
    wraps: u64,
}

impl Clock {
    fn start(mut syst: SYST) -> Self {
        syst.set_clock_source(SystClkSource::Core);
        syst.set_reload(CORE_HZ / 1000 - 1);
        syst.clear_current();
        syst.enable_interrupt();
        syst.enable_counter();
        Self { last: 0, wraps: 0 }
    }

    fn now(&mut self) -> Instant {
        let ticks = TICKS.load(Ordering::Relaxed);
        if ticks < self.last {
            self.wraps += 1;
        }
        self.last = ticks;
        Instant::from_millis(self.wraps << 32 | u64::from(ticks))
    }
}

/// Entropy for smoltcp's seed and the RTMP handshakes. The AN385 has no random number generator
/// (a real board reads its own: the RP2040's ring oscillator, the ESP32's RNG), so this is a
/// documented stand-in: the LAN9118's free-running 25 MHz counter, read at boot and again at
/// every connection, stirred into a SplitMix64 state. Under QEMU the counter follows the host's
/// clock, so values differ between boots and connections, but they are guessable: nothing
/// here relies on them being secret (the RTMP handshake's random bytes are not a secret, and
/// smoltcp wants only different sequence numbers and ports on each boot).
struct Entropy(u64);

impl Entropy {
    fn stir(&mut self, counter: u32) -> u64 {
        self.0 ^= u64::from(counter);
        // SplitMix64 (Steele, Lea, Flood 2014).
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn bytes(&mut self, counter: u32) -> [u8; 32] {
        let mut out = [0; 32];
        for chunk in out.chunks_mut(8) {
            chunk.copy_from_slice(&self.stir(counter).to_le_bytes());
        }
        out
    }
}

static mut BUFFERS: Buffers = Buffers::new();
static mut SOCKETS: Sockets<'static> = [SocketStorage::EMPTY; PLAYERS];

#[entry]
fn main() -> ! {
    // SAFETY: `main` runs once and nothing else names these statics: these are the only
    // references to them for the life of the program.
    let (buffers, sockets) = unsafe { (&mut *addr_of_mut!(BUFFERS), &mut *addr_of_mut!(SOCKETS)) };
    let Some(core) = cortex_m::Peripherals::take() else {
        fail("core peripherals taken twice")
    };
    let mut clock = Clock::start(core.SYST);
    // SAFETY: the AN385 maps its LAN9118 at this address, and only this driver touches it.
    let (mut eth, info) = match unsafe { Lan9118::new(LAN9118_BASE, MAC) } {
        Ok(found) => found,
        Err(e) => fail_with("LAN9118", e),
    };
    hprintln!("LAN9118 id {:#010x}, link {}", info.id_rev, info.link);
    let counter = eth.free_run();
    let mut entropy = Entropy(0);
    let net = NetConfig {
        mac: MAC,
        address: IpCidr::new(IpAddress::v4(192, 0, 2, 2), 24),
        port: 1935,
        seed: entropy.stir(counter.read()),
    };
    let mut board = match Board::new(buffers, sockets, &mut eth, &net, clock.now()) {
        Ok(board) => board,
        Err(e) => fail_with("board", e),
    };
    hprintln!(
        "serving rtmp://{}:{}/live/audio",
        net.address.address(),
        net.port
    );
    let mut playing = 0;
    loop {
        let now = clock.now();
        let wake = match board.poll(&mut eth, now, || entropy.bytes(counter.read())) {
            Ok(wake) => wake,
            Err(e) => fail_with("poll", e),
        };
        if board.playing() != playing {
            playing = board.playing();
            hprintln!("playing {}", playing);
            hprintln!("stack {}", stack_used());
        }
        // Sleep until the next millisecond tick; a frame waiting or the wake time ends it.
        while !eth.has_frame() && clock.now() < wake {
            cortex_m::asm::wfi();
        }
    }
}

/// The most stack used so far, in bytes. cortex-m-rt paints the stack (all RAM above the statics)
/// with [`STACK_PAINT_VALUE`] before `main` (its `paint-stack` feature); the deepest word whose
/// paint is gone is the high-water mark.
fn stack_used() -> usize {
    extern "C" {
        // The linker script's bounds of the stack: its lowest address and its top.
        static _stack_end: u32;
        static _stack_start: u32;
    }
    let (bottom, top) = (
        addr_of!(_stack_end) as usize,
        addr_of!(_stack_start) as usize,
    );
    let painted = (bottom..top)
        .step_by(4)
        // SAFETY: every word between the linker's stack bounds is RAM this program owns; a
        // read has no side effects.
        .take_while(|&at| unsafe { read_volatile(at as *const u32) } == STACK_PAINT_VALUE)
        .count();
    top - bottom - 4 * painted
}

fn fail_with(what: &str, error: impl core::fmt::Debug) -> ! {
    hprintln!("{}: {:?}", what, error);
    fail("stopped")
}

/// Ends the emulation with a failure status (on a real board: a reset).
fn fail(why: &str) -> ! {
    hprintln!("zerocast-board-mps2: {}", why);
    loop {
        debug::exit(debug::EXIT_FAILURE);
    }
}

#[panic_handler]
fn panic(info: &PanicInfo) -> ! {
    hprintln!("panic: {}", info);
    fail("panicked")
}
