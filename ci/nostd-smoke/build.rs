//! Link arguments for the smoke binary.
//!
//! There is no cortex-m-rt here (it would add a vector table and a memory map the smoke test does
//! not need), so the entry symbol is named explicitly. With the `defmt` feature, defmt's linker
//! script (`defmt.x`, put on the search path by defmt's own build script) places the interned
//! format strings; without it the `.defmt` symbols would be unresolved.
fn main() {
    println!("cargo:rustc-link-arg-bins=--entry=zerocast_smoke_entry");
    if std::env::var_os("CARGO_FEATURE_DEFMT").is_some() {
        println!("cargo:rustc-link-arg-bins=-Tdefmt.x");
    }
    println!("cargo:rerun-if-changed=build.rs");
}
