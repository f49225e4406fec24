//! Link arguments for the two bare-metal binaries:
//! - `zerocast-board-bare` (`thumbv6m-none-eabi`): there is no cortex-m-rt there (a port adds
//!   it, with its memory map and vector table), so the entry symbol is named explicitly, as in
//!   `ci/nostd-smoke`;
//! - `zerocast-board-mps2` (`thumbv7m-none-eabi`): cortex-m-rt's `link.x`, which includes the
//!   board's `memory.x` from the linker's search path (this crate's directory).
fn main() {
    println!("cargo:rustc-link-arg-bin=zerocast-board-bare=--entry=board_main");
    println!("cargo:rustc-link-arg-bin=zerocast-board-mps2=-Tlink.x");
    let dir = std::env::var("CARGO_MANIFEST_DIR").unwrap_or_default();
    println!("cargo:rustc-link-search={dir}");
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-changed=memory.x");
}
