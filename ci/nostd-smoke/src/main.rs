//! no_std + no-alloc smoke test for `zerocast-core` (see `Cargo.toml` for why it exists).
//!
//! The entry function drives every core module that has landed through its public entry points,
//! with `core::hint::black_box` on inputs and outputs so the optimizer cannot delete the calls and
//! the linker really has to resolve everything they reach. One private module per core module: when
//! a core module lands, add its module here and call it from `zerocast_smoke_entry`.
#![no_std]
#![no_main]

use core::hint::black_box;
use core::panic::PanicInfo;

/// `zerocast_core::time`: the caller's millisecond clock.
mod time {
    use core::hint::black_box;
    use zerocast_core::time::Instant;

    pub fn run() {
        let start = Instant::from_millis(black_box(1_000));
        let later = start.saturating_add_millis(black_box(u64::MAX));
        black_box(later.saturating_millis_since(start));
        black_box(later.as_millis());
    }
}

/// The entry symbol the linker is pointed at (`build.rs`). Never returns: there is nothing to
/// return to on bare metal.
#[no_mangle]
pub extern "C" fn zerocast_smoke_entry() -> ! {
    time::run();
    loop {
        black_box(());
    }
}

/// Bare metal has no unwinding and no stderr: stop here.
#[panic_handler]
fn panic(_info: &PanicInfo) -> ! {
    loop {
        black_box(());
    }
}

/// A defmt logger that drops every frame, so the `defmt` build of the core links without a probe
/// transport (RTT, semihosting).
#[cfg(feature = "defmt")]
mod discard_logger {
    #[defmt::global_logger]
    struct Discard;

    // SAFETY: the trait's contract is about the frames passed to `write` being handled atomically;
    // this logger keeps no state and drops every byte, so any call order is sound.
    unsafe impl defmt::Logger for Discard {
        fn acquire() {}
        unsafe fn flush() {}
        unsafe fn release() {}
        unsafe fn write(_bytes: &[u8]) {}
    }

    // defmt requires a timestamp provider only if one is declared; none is, so frames carry none.
}
