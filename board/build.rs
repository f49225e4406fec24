//! Link arguments for `zerocast-board-bare` (built for `thumbv6m-none-eabi` only): there is no
//! cortex-m-rt here (a port adds it, with its memory map and vector table), so the entry symbol is
//! named explicitly, as in `ci/nostd-smoke`.
fn main() {
    println!("cargo:rustc-link-arg-bin=zerocast-board-bare=--entry=board_main");
    println!("cargo:rerun-if-changed=build.rs");
}
