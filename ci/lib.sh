# shellcheck shell=bash
# Shared by ci/run.sh, ci/fuzz.sh and ci/deb.sh: paths, tool lookup and the Raspberry Pi build
# recipes. Source it; it defines functions and variables and runs nothing else.

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# Honours CARGO_TARGET_DIR, so a cold build can be timed without touching ./target.
TARGET_DIR="${CARGO_TARGET_DIR:-$ROOT/target}"

# The Pi Zero (W) has a Broadcom BCM2835: an ARM1176JZF-S, i.e. ARMv6 with VFPv2, hard float, no
# NEON and no Thumb-2. Rust's `arm-unknown-linux-gnueabihf` is exactly that (Debian's own "armhf"
# is ARMv7, which the Pi Zero cannot run). The `.2.36` suffix is cargo-zigbuild's way to link
# against glibc 2.36 symbol versions: Debian 12 / Raspberry Pi OS bookworm.
PI_TARGET=arm-unknown-linux-gnueabihf
PI_GLIBC=2.36
PI_MUSL_TARGET=arm-unknown-linux-musleabihf
# Where `cargo zigbuild --target $PI_TARGET.$PI_GLIBC --release` leaves the binary.
PI_BIN="$TARGET_DIR/$PI_TARGET/release/zerocast"
PI_MUSL_BIN="$TARGET_DIR/$PI_MUSL_TARGET/release/zerocast"

# Prints a step banner to stderr.
say() { printf '\n==> %s\n' "$*" >&2; }

# Fails the script with a message.
die() { printf 'error: %s\n' "$*" >&2; exit 1; }

# Tools installed by `setup` (cargo install, pip) go to places that may not be on PATH yet in a
# fresh shell: ~/.cargo/bin and the scripts directory of the python3 that pip installed into.
tool_path() {
    PATH="$HOME/.cargo/bin:$PATH"
    local scripts user_bin
    if command -v python3 >/dev/null 2>&1; then
        scripts=$(python3 -c 'import sysconfig; print(sysconfig.get_path("scripts"))' 2>/dev/null || true)
        user_bin=$(python3 -c 'import site; print(site.getuserbase() + "/bin")' 2>/dev/null || true)
        [[ -n $scripts && -d $scripts ]] && PATH="$PATH:$scripts"
        [[ -n $user_bin && -d $user_bin ]] && PATH="$PATH:$user_bin"
    fi
    export PATH
}

# The environment of every Pi cross build (the recipe; `cross` and `deb` both use it):
# - RUSTC_BOOTSTRAP=1: `-Zbuild-std` on the stable toolchain. No prebuilt std for the ARM targets
#   can be downloaded here, so std is compiled from the rust-src component.
# - C code built by `cc` (none today, but a -sys crate may add some) uses Debian's cross gcc, told
#   to emit ARMv6 + VFPv2 code in ARM state: its default is ARMv7 + Thumb-2, which would raise the
#   binary's Tag_CPU_arch and crash on the Pi Zero with SIGILL.
# - LAME (mp3lame-sys, feature `mp3`) is built by its own configure script, which must be told it
#   is cross-compiling. FDK AAC (fdk-aac-sys, feature `aac`) is C++ that its build script hands
#   to the C compiler driver above (so the cross gcc needs cc1plus: g++-arm-linux-gnueabihf); it
#   calls nothing from a C++ runtime, so linking it adds only FDK itself.
# - alsa-sys finds libasound through pkg-config; the armhf .pc files come from libasound2-dev:armhf.
#   Linking against Debian's ARMv7 libasound.so is fine: only its symbols are used at link time,
#   the Pi's own ARMv6 libasound is loaded at run time.
pi_env() {
    export RUSTC_BOOTSTRAP=1
    # No panic location strings (file, line) in the Pi builds: with panic=abort they would only
    # name a place nobody reads, and they cost 27 KiB of the 1.5 MiB budget (FDK, LAME and the
    # HTTP server fill the rest; docs/architecture.md, "Builds for the Pi").
    export PI_RUSTFLAGS="-Zlocation-detail=none"
    export CC_arm_unknown_linux_gnueabihf=arm-linux-gnueabihf-gcc
    export CFLAGS_arm_unknown_linux_gnueabihf="-march=armv6+fp -mfpu=vfp -mfloat-abi=hard -marm"
    export MP3LAME_SYS_OVERRIDE_HOST=arm-linux-gnueabihf
    export PKG_CONFIG_ALLOW_CROSS=1
    export PKG_CONFIG_LIBDIR=/usr/lib/arm-linux-gnueabihf/pkgconfig
}

# Builds the dynamically linked (glibc 2.36) armv6 `zerocast` binary into $PI_BIN.
build_pi_binary() {
    (
        cd "$ROOT"
        pi_env
        RUSTFLAGS="$PI_RUSTFLAGS" cargo zigbuild --release --locked -p zerocast \
            --target "$PI_TARGET.$PI_GLIBC" -Zbuild-std=std,panic_abort
    )
    [[ -x $PI_BIN ]] || die "cross build produced no $PI_BIN"
}
