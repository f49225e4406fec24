#!/usr/bin/env bash
# zerocast CI and tooling: one script, one subcommand per step (the shape of smoltcp's ci.sh).
#
#   ci/run.sh serve [ZEROCAST ARGS...]  install the few things a build needs, build, start serving
#   ci/run.sh all                       setup fmt clippy test nostd board cross e2e hostile fuzz deb
#                                       bench, timed
#   ci/run.sh setup|fmt|clippy|test|nostd|board|cross|fuzz|e2e|hostile|deb
#   ci/run.sh bench                     zerocast against the seed, numbers only (`all`: quick run)
#
# Every step is idempotent and can be run alone (after `setup`). `.ci/run` runs `all`.
# Environment: FUZZ_SECONDS (per fuzz target, default 30), ZEROCAST_SOURCE (serve, default
# alsa:default), CI (when set, an empty fuzz target list and a missing check tool are errors).
set -euo pipefail

# shellcheck source=ci/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$ROOT"
tool_path

# What the tests and the cross build need from Debian. The media tools are the real peers the
# end-to-end tests talk to (players: ffmpeg/ffplay, rtmpdump, VLC, GStreamer; nginx-rtmp as the
# upstream server for relay tests; PulseAudio/ALSA for capture tests); the arm packages are the
# cross toolchain and qemu to run what it builds; iproute2 (`ip netns`, `ip tuntap`) makes the
# network namespace and TAP device the board example is tested on, and qemu-system-arm boots the
# board firmware (an emulated Cortex-M3, the MPS2 AN385) with its NIC on such a device; lintian,
# debootstrap and qemu-user-static check the .deb and install it in an armhf root (ci/deb-chroot.sh); icecast2 and
# darkice are the Icecast side the benchmark compares HTTP listeners with (ci/bench.sh).
APT_PACKAGES=(
    ffmpeg rtmpdump vlc-bin vlc-plugin-base
    gstreamer1.0-tools gstreamer1.0-plugins-good gstreamer1.0-plugins-bad
    gstreamer1.0-plugins-base gstreamer1.0-libav
    nginx libnginx-mod-rtmp
    pulseaudio pulseaudio-utils libasound2-plugins libasound2-dev alsa-utils sox
    qemu-user gcc-arm-linux-gnueabihf g++-arm-linux-gnueabihf binutils-arm-linux-gnueabihf
    libc6-dev-armhf-cross
    pkg-config dpkg-dev python3 systemd man-db
    librtmp-dev libffi-dev
    iproute2 strace qemu-system-arm
    lintian debootstrap qemu-user-static binfmt-support
    chromium libxml2-utils
    icecast2 darkice goaccess
)
# Only the libasound headers and .pc file for the cross build's pkg-config.
APT_ARMHF_PACKAGES=(libasound2-dev:armhf)
# What `serve` needs to build and run on a Debian or Raspberry Pi OS machine.
# g++ and make: the bundled FDK AAC (C++) and LAME (configure + make) are built by the crate.
APT_SERVE_PACKAGES=(gcc g++ make libc6-dev pkg-config libasound2-dev alsa-utils ca-certificates curl)

# Runs a command as root: directly when we are root (CI), through sudo otherwise (a Pi).
as_root() {
    if [[ $(id -u) -eq 0 ]]; then "$@"; else sudo "$@"; fi
}

# Prints the packages of "$@" that dpkg does not have installed. A name without `:arch` means
# the native architecture (or `all`): once armhf is added, `dpkg-query -W libasound2-dev` lists
# both the amd64 and the armhf instance, and only the native one counts for that name.
missing_packages() {
    local p native
    native=$(dpkg --print-architecture)
    for p in "$@"; do
        if [[ $p == *:* ]]; then
            [[ $(dpkg-query -W -f='${db:Status-Status}' "$p" 2>/dev/null) == installed ]] && continue
        else
            dpkg-query -W -f='${Architecture} ${db:Status-Status}\n' "$p" 2>/dev/null |
                grep -Eqx "($native|all) installed" && continue
        fi
        printf '%s\n' "$p"
    done
}

# `apt-get update`, tried three times: a mirror caught mid-sync fails one index ("File has
# unexpected size ... Mirror sync in progress?") and is fine seconds later. A last failure is
# reported but not fatal: the lists that did arrive may hold every package needed, and
# `apt-get install` says clearly when they do not.
apt_update() {
    local try
    for try in 1 2 3; do
        as_root apt-get update -qq && return
        echo "apt-get update failed (try $try of 3)" >&2
        [[ $try -lt 3 ]] && sleep 15
    done
    echo "warning: apt-get update kept failing; installing from the lists that arrived" >&2
}

APT_UPDATED=
apt_install() {
    local missing
    mapfile -t missing < <(missing_packages "$@")
    if [[ ${#missing[@]} -eq 0 ]]; then
        echo "apt: all ${#} packages present"
        return
    fi
    echo "apt: installing ${missing[*]}"
    if [[ -z $APT_UPDATED ]]; then
        apt_update
        APT_UPDATED=1
    fi
    # Packages with services (nginx) must not start them: a container has no systemd and the
    # init script would put nginx on port 80; the tests start their own nginx on a free port.
    # policy-rc.d answering 101 ("action forbidden") is Debian's switch for that, honoured by
    # invoke-rc.d and deb-systemd-invoke (see /usr/share/doc/init-system-helpers/README.policy-rc.d).
    local policy=/usr/sbin/policy-rc.d ours=
    if [[ ! -e $policy ]]; then
        printf '#!/bin/sh\nexit 101\n' | as_root tee "$policy" >/dev/null
        as_root chmod 755 "$policy"
        ours=1
    fi
    local rc=0
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
        "${missing[@]}" || rc=$?
    [[ -n $ours ]] && as_root rm -f "$policy"
    [[ $rc -eq 0 ]] || die "apt-get install failed ($rc)"
    # On a machine that runs systemd the unit is still enabled for the next boot: disable it.
    if [[ " ${missing[*]} " == *" nginx "* && -d /run/systemd/system ]]; then
        as_root systemctl disable --now nginx.service || true
    fi
}

cmd_setup() {
    command -v cargo >/dev/null || die "cargo not found: install Rust with rustup first"
    if ! dpkg --print-foreign-architectures | grep -qx armhf; then
        echo "dpkg: adding architecture armhf"
        as_root dpkg --add-architecture armhf
    fi
    apt_install "${APT_PACKAGES[@]}" "${APT_ARMHF_PACKAGES[@]}"

    # Standard library sources, for -Zbuild-std (nostd, cross).
    if [[ -d "$(rustc --print sysroot)/lib/rustlib/src/rust/library/core" ]]; then
        echo "rustup: rust-src present"
    else
        rustup component add rust-src
    fi

    # cargo-zigbuild links the Pi binaries with zig (glibc version pinning, musl); both come from
    # PyPI as prebuilt wheels, which is much faster than compiling cargo-zigbuild.
    if cargo-zigbuild --version >/dev/null 2>&1 && python3 -m ziglang version >/dev/null 2>&1; then
        echo "pip: cargo-zigbuild $(cargo-zigbuild --version | cut -d' ' -f2), zig $(python3 -m ziglang version) present"
    else
        python3 -m pip --version >/dev/null 2>&1 || apt_install python3-pip
        # Debian's own python3 refuses system-wide pip installs (PEP 668); the image's pyenv
        # python does not. Try the plain install first, then the user site with the override.
        python3 -m pip install -q ziglang cargo-zigbuild ||
            python3 -m pip install -q --user --break-system-packages ziglang cargo-zigbuild
        tool_path
        hash -r
        cargo-zigbuild --version >/dev/null || die "cargo-zigbuild not on PATH after pip install"
    fi

    # python-librtmp: librtmp (OBS's RTMP library family) as a publisher in the e2e tests.
    if python3 -c 'import librtmp' 2>/dev/null; then
        echo "pip: python-librtmp present"
    else
        python3 -m pip install -q python-librtmp ||
            python3 -m pip install -q --user --break-system-packages python-librtmp
    fi

    # The HTTP tests read /metrics with Prometheus' own text parser.
    if python3 -c 'import prometheus_client' 2>/dev/null; then
        echo "pip: prometheus_client present"
    else
        python3 -m pip install -q prometheus_client ||
            python3 -m pip install -q --user --break-system-packages prometheus_client
    fi

    if cargo fuzz --version >/dev/null 2>&1; then
        echo "cargo: $(cargo fuzz --version) present"
    else
        cargo install cargo-fuzz --locked
    fi
}

cmd_fmt() {
    cargo fmt --all --check
    # The two crates outside the workspace (without --all, which would reformat their path
    # dependency, the core, again).
    (cd core/fuzz && cargo fmt --check)
    (cd ci/nostd-smoke && cargo fmt --check)
}

cmd_clippy() {
    cargo clippy --locked --workspace --all-targets -- -D warnings
    # The core's two logging back ends (exclusive features, so one run each).
    cargo clippy --locked -p zerocast-core --all-targets --features log -- -D warnings
    cargo clippy --locked -p zerocast-core --all-targets --features defmt -- -D warnings
    # linux-host without ALSA: the static Pi build (ci/run.sh cross).
    cargo clippy --locked -p zerocast --no-default-features --all-targets -- -D warnings
    # The board example: its TAP binary and test, and its bare-metal binary (ci/run.sh board).
    cargo clippy --locked -p zerocast-board --features tap --all-targets -- -D warnings
    board_bare clippy -- -D warnings
    board_mps2 clippy -- -D warnings
    # The two crates outside the workspace have lockfiles of their own, used without --locked:
    # a dependency added to the core must not need two more lockfile updates to pass CI.
    (cd core/fuzz && cargo clippy --all-targets -- -D warnings)
    local features
    for features in "" defmt; do
        (cd ci/nostd-smoke && RUSTC_BOOTSTRAP=1 cargo clippy --release \
            -Zbuild-std=core --target thumbv6m-none-eabi --target-dir "$TARGET_DIR/nostd-smoke" \
            ${features:+--features "$features"} -- -D warnings)
    done
}

cmd_test() {
    # Everything but the integration tests of linux-host and bench, which `e2e` runs (real
    # servers and players).
    cargo test --locked --workspace --exclude zerocast --exclude zerocast-bench
    cargo test --locked -p zerocast --lib --bins
    cargo test --locked -p zerocast-bench --bins
    # The fuzz crate's shared helpers (the targets themselves are exercised by `fuzz`).
    (cd core/fuzz && cargo test --lib)
}

# Proves the core is no_std and allocation-free: see ci/nostd-smoke/Cargo.toml. Only `core` is
# built for the target (-Zbuild-std=core), so there is no `alloc` crate to link against at all.
cmd_nostd() {
    local features elf
    for features in "" defmt; do
        say "nostd: thumbv6m-none-eabi, features: ${features:-none}"
        (cd ci/nostd-smoke && RUSTC_BOOTSTRAP=1 cargo build --release \
            -Zbuild-std=core --target thumbv6m-none-eabi --target-dir "$TARGET_DIR/nostd-smoke" \
            ${features:+--features "$features"})
        elf="$TARGET_DIR/nostd-smoke/thumbv6m-none-eabi/release/zerocast-nostd-smoke"
        arm-linux-gnueabihf-size "$elf"
    done
}

# Runs cargo subcommand "$1" on the board example's bare-metal binary for thumbv6m-none-eabi, with
# only `core` built for the target (as `nostd`): no `alloc` exists to link. The rest are arguments.
board_bare() {
    local sub=$1
    shift
    RUSTC_BOOTSTRAP=1 cargo "$sub" --locked --release -p zerocast-board --features bare \
        --bin zerocast-board-bare --target thumbv6m-none-eabi -Zbuild-std=core \
        --target-dir "$TARGET_DIR/board-bare" "$@"
}

# Runs cargo subcommand "$1" on the board firmware for the MPS2 AN385 (Cortex-M3) as QEMU emulates
# it, thumbv7m-none-eabi, the same way. The rest are arguments.
board_mps2() {
    local sub=$1
    shift
    RUSTC_BOOTSTRAP=1 cargo "$sub" --locked --release -p zerocast-board --features mps2 \
        --bin zerocast-board-mps2 --target thumbv7m-none-eabi -Zbuild-std=core \
        --target-dir "$TARGET_DIR/board-mps2" "$@"
}

# Prints an ELF's flash and RAM (text = flash; data = flash and RAM, the initial image; bss =
# RAM) and the RAM each of its statics whose name starts with "$2" takes.
board_size() {
    local elf=$1 prefix=$2 _addr size kind name
    arm-linux-gnueabihf-size "$elf"
    while read -r _addr size kind name; do
        if [[ $kind == [dDbB] && $name == "$prefix"* ]]; then
            echo "RAM: $name $((16#$size)) bytes"
        fi
    done < <(arm-linux-gnueabihf-nm -S -C "$elf")
}

# The core's board driver (zerocast_core::board) on a board's terms:
# - over smoltcp on a TAP device, in a network namespace the test makes, played by ffmpeg and
#   rtmpdump at once and checked by content (board/tests/tap.rs; needs root);
# - firmware for an emulated Cortex-M3 board (MPS2 AN385) with its own LAN9118 driver, booted in
#   qemu-system-arm with its NIC on a TAP device in a network namespace, played the same way for
#   10 s (board/tests/mps2.rs; needs root), and its size;
# - the same example linked for a Cortex-M0 with no allocator, and its size.
# The driver over embedded-io-adapters' std wrapper (core/tests/board_std.rs) is one of the core's
# tests: `test` runs it on x86, `cross` on the emulated ARM1176.
cmd_board() {
    say "board: smoltcp on a TAP device, ffmpeg and rtmpdump in a network namespace"
    cargo test --locked -p zerocast-board --features tap --test tap -- --nocapture
    say "board: firmware for the MPS2 AN385 in qemu-system-arm, ffmpeg and rtmpdump in a namespace"
    # Symbols kept (the release profile strips them) to print what the RAM goes to.
    CARGO_PROFILE_RELEASE_STRIP=false board_mps2 build
    local mps2="$TARGET_DIR/board-mps2/thumbv7m-none-eabi/release/zerocast-board-mps2"
    board_size "$mps2" zerocast_board_mps2::
    # The instruction-count plugin of the benchmark (bench/qemu-insn), for system emulation here:
    # the test prints what the firmware ran (docs/porting.md).
    local plugin="$TARGET_DIR/board-mps2/libinsn.so"
    gcc -O2 -shared -fPIC -o "$plugin" bench/qemu-insn/insn.c
    ZEROCAST_BOARD_MPS2_ELF=$mps2 ZEROCAST_QEMU_INSN=$plugin \
        cargo test --locked -p zerocast-board --features tap --test mps2 -- --nocapture
    say "board: the example for thumbv6m-none-eabi, no allocator"
    CARGO_PROFILE_RELEASE_STRIP=false board_bare build
    board_size "$TARGET_DIR/board-bare/thumbv6m-none-eabi/release/zerocast-board-bare" \
        zerocast_board_bare::
}

# Prints the three ARM attributes that decide whether a binary runs on the Pi Zero's ARM1176 and
# fails unless they are exactly ARMv6, VFPv2 and Thumb-1 (an ARMv7 object anywhere in the link
# raises them; the Pi Zero then dies with SIGILL).
check_armv6() {
    local elf=$1 attrs
    attrs=$(arm-linux-gnueabihf-readelf -A "$elf" | grep -E 'Tag_CPU_arch:|Tag_FP_arch:|Tag_THUMB_ISA_use:')
    printf '%s\n' "$attrs"
    grep -Eq 'Tag_CPU_arch: v6$' <<<"$attrs" || die "$elf: Tag_CPU_arch is not v6"
    grep -Eq 'Tag_FP_arch: VFPv2$' <<<"$attrs" || die "$elf: Tag_FP_arch is not VFPv2"
    grep -Eq 'Tag_THUMB_ISA_use: Thumb-1$' <<<"$attrs" || die "$elf: Tag_THUMB_ISA_use is not Thumb-1"
}

# Prints a file's size, and fails when it exceeds the limit given in bytes.
check_size() {
    local file=$1 limit=$2 size
    size=$(stat -c %s "$file")
    printf 'size: %s bytes (%s KiB, limit %s KiB): %s\n' "$size" $((size / 1024)) $((limit / 1024)) "$file"
    [[ $size -le $limit ]] || die "$file is larger than $((limit / 1024)) KiB"
}

# The Pi Zero's CPU for qemu, so an ARMv7 instruction in anything we built traps.
QEMU_PI=(qemu-arm -cpu arm1176)
# The glibc build under qemu: its loader and libraries (libc, libasound) are Debian's armhf
# ones, which are ARMv7, so no -cpu here; the instruction set of our own code is proven by
# readelf and by the static build below, which runs on the emulated ARM1176 itself.
QEMU_GLIBC=(qemu-arm -L /usr/arm-linux-gnueabihf)

# Runs tests of one linux-host integration-test crate against the zerocast command "$1" (words,
# see ZEROCAST_E2E_COMMAND in linux-host/tests/common/process.rs) instead of the host binary.
# $2 is the crate, the rest exact test names. --nocapture: the measured tone (frequency,
# duration, gaps) is printed by each player check.
e2e_with() {
    local command=$1 crate=$2
    shift 2
    say "cross: e2e $crate under: $command"
    ZEROCAST_E2E_COMMAND="$command" cargo test --locked -p zerocast --test "$crate" -- \
        --exact --test-threads=1 --nocapture "$@" 2>&1 |
        grep -Ev '^\[ *[0-9.]+\] (DEBUG|TRACE)'
}

# The end-to-end subset that runs under emulation with binary "$1": the tone served to ffmpeg
# players and checked by content (PCM, ADPCM, AAC, MP3, 48 kHz capture), the command line, a
# clean SIGTERM with players connected, the systemd notifications and watchdog.
e2e_pi_binary() {
    local command=$1
    e2e_with "$command" cli help_version_and_bad_arguments \
        tone_logs_status_and_stops_cleanly_on_sigterm stdin_pipe_ends_the_process_cleanly
    e2e_with "$command" e2e_players zerocast_adpcm::ffmpeg zerocast_pcm::ffmpeg_low_delay
    # FDK and LAME as built for the Pi, and the 48 kHz resampler.
    e2e_with "$command" e2e_codecs zerocast_aac::ffmpeg capture_48k_stdin::aac_is_served_at_48k \
        capture_48k_stdin::pcm_is_resampled_to_44k1 zerocast_mp3::ffmpeg \
        capture_48k_stdin::mp3_is_resampled_to_44k1
    e2e_with "$command" e2e_lifecycle sigterm_ends_every_players_stream_cleanly
    e2e_with "$command" e2e_systemd ready_status_and_a_watchdog_that_stops_with_the_loop
}

cmd_cross() {
    say "cross: zerocast for $PI_TARGET (glibc $PI_GLIBC)"
    build_pi_binary
    check_armv6 "$PI_BIN"
    # 2 MiB: the budget for the binary in the .deb (release profile strips it already); it was
    # 1.5 MiB until issue 19-22's server grew past it (docs/architecture.md, "Builds for the Pi").
    check_size "$PI_BIN" $((2 * 1024 * 1024))
    "${QEMU_GLIBC[@]}" "$PI_BIN" --version

    # Static musl builds, run on the emulated ARM1176 itself. `link-self-contained=no`: the musl
    # CRT objects rustc would add come with the prebuilt std we do not have; zig brings its own.
    say "cross: zerocast-core tests for $PI_MUSL_TARGET, run under ${QEMU_PI[*]}"
    local list bin n=0
    list=$(mktemp)
    (
        export RUSTC_BOOTSTRAP=1 RUSTFLAGS="-C link-self-contained=no"
        cargo zigbuild --locked --tests -p zerocast-core --target "$PI_MUSL_TARGET" \
            -Zbuild-std --message-format=json-render-diagnostics
    ) | python3 -c '
import json, sys
for line in sys.stdin:
    m = json.loads(line)
    if m.get("reason") == "compiler-artifact" and m.get("profile", {}).get("test") and m.get("executable"):
        print(m["executable"])
' >"$list"
    while IFS= read -r bin; do
        echo "qemu: $bin"
        check_armv6 "$bin"
        "${QEMU_PI[@]}" "$bin"
        n=$((n + 1))
    done <"$list"
    rm -f "$list"
    [[ $n -gt 0 ]] || die "no zerocast-core test binary was built for $PI_MUSL_TARGET"

    # A static zerocast needs a static libasound built against musl, which neither Debian nor
    # the registries provide, and alsa-lib's plugins (pulse, dsnoop configs) are loaded with
    # dlopen, which a static binary cannot do: the static build leaves out the `alsa` feature
    # and captures through stdin (docs/architecture.md, "Builds for the Pi").
    # Both encoders, like the package's build. Budget: issue 4's 1.5 MiB was for the program
    # without AAC; FDK (~480 KiB) and LAME (~145 KiB) come on top of it, and the static build
    # carries musl as well (1 676 352 bytes before issues 19-22, checked against 1.75 MiB; 2.25
    # MiB since: docs/architecture.md, "Builds for the Pi").
    # The features and flags are ci/bench.sh's, so the two share one build.
    say "cross: static zerocast (no ALSA; AAC and MP3) for $PI_MUSL_TARGET"
    (
        pi_env
        export RUSTC_BOOTSTRAP=1 RUSTFLAGS="-C link-self-contained=no $PI_RUSTFLAGS"
        cargo zigbuild --locked --release -p zerocast --no-default-features --features aac,mp3 \
            --target "$PI_MUSL_TARGET" -Zbuild-std=std,panic_abort
    )
    check_armv6 "$PI_MUSL_BIN"
    check_size "$PI_MUSL_BIN" $((9 * 1024 * 1024 / 4))
    # Static: no program interpreter (dynamic loader) and no shared library needed.
    ! arm-linux-gnueabihf-readelf -lW "$PI_MUSL_BIN" | grep -q INTERP || die "$PI_MUSL_BIN has a dynamic loader"
    echo "static: no INTERP, $(arm-linux-gnueabihf-readelf -dW "$PI_MUSL_BIN" | grep -c NEEDED || true) NEEDED"
    "${QEMU_PI[@]}" "$PI_MUSL_BIN" --version

    # The binaries that ship, end to end under emulation: the .deb's glibc build (with ALSA:
    # `devices` as well) and the static build on the Pi Zero's own CPU.
    e2e_pi_binary "${QEMU_GLIBC[*]} $PI_BIN"
    e2e_with "${QEMU_GLIBC[*]} $PI_BIN" e2e_lifecycle devices_lists_the_pcms_alsa_knows
    e2e_pi_binary "${QEMU_PI[*]} $PI_MUSL_BIN"
}

cmd_fuzz() {
    bash ci/fuzz.sh
}

# The hostile battery (issue 19): attacks and faults against the release build, each with
# its players content-checked throughout. `hostile` runs these crates; `e2e` runs the rest.
HOSTILE_TESTS=(e2e_hostile e2e_pushes e2e_hardening_recorder e2e_hardening_names
    e2e_hardening_egress e2e_hardening_limits)

# End-to-end tests: every integration test of linux-host (linux-host/tests/*.rs) but the hostile
# battery, and of bench (bench/tests/*.rs), one at a time, since they start real servers and
# players.
cmd_e2e() {
    local file name args=()
    for file in linux-host/tests/*.rs; do
        name=$(basename "$file" .rs)
        [[ " ${HOSTILE_TESTS[*]} " == *" $name "* ]] || args+=(--test "$name")
    done
    if [[ ${#args[@]} -eq 0 ]]; then
        echo "e2e: no end-to-end tests in linux-host/tests/ yet"
        return
    fi
    # --nocapture: the tests print what they measured (each player's tone, RSS with 10 players,
    # the slow player's memory), which is the report the issues ask for.
    cargo test --locked -p zerocast "${args[@]}" -- --test-threads=1 --nocapture
    # The benchmark's load client against a zerocast tone server (bench/tests).
    cargo test --locked -p zerocast-bench --test '*' -- --test-threads=1 --nocapture
}

# The hostile battery against the release build (what a Pi runs, and what `bench` builds next):
# a push to an unpublished stream, a resolver that never answers, planted secrets, squatters,
# connection floods from few addresses, descriptor exhaustion, a full or slow disk.
cmd_hostile() {
    cargo build --locked --release -j2 -p zerocast
    local args=() name
    for name in "${HOSTILE_TESTS[@]}"; do
        args+=(--test "$name")
    done
    ZEROCAST_E2E_COMMAND="$TARGET_DIR/release/zerocast" cargo test --locked -p zerocast \
        "${args[@]}" -- --test-threads=1 --nocapture
}

# The package built and checked (ci/deb.sh), then installed, run, upgraded and purged in an
# armhf Debian root under qemu (ci/deb-chroot.sh, which prints its time).
cmd_deb() {
    bash ci/deb.sh
    bash ci/deb-chroot.sh
}

# Benchmarks print numbers and assert none (a goal missed is reported, not failed); the step fails
# only when a measurement cannot be made. BENCH_QUICK=1 for a shorter run, which `all` uses so
# that every CI run shows the comparison. See ci/bench.sh and docs/benchmarks.md.
cmd_bench() {
    bash ci/bench.sh
}

# The soak (ci/soak.sh): the release build for SOAK_SECONDS (600 in CI) with players, a
# publisher and a push coming and going; RSS, descriptors and CPU must stay flat.
cmd_soak() {
    bash ci/soak.sh
}

# Builds and starts zerocast on this machine (Debian, Raspberry Pi OS), installing only what the
# build needs. Arguments go to zerocast; the source defaults to the default ALSA capture device.
cmd_serve() {
    apt_install "${APT_SERVE_PACKAGES[@]}"
    if ! command -v cargo >/dev/null; then
        # Debian's rustc is older than the workspace's rust-version, so Rust comes from rustup.
        curl --proto '=https' --tlsv1.2 -sSf https://sh.rustup.rs | sh -s -- -y --profile minimal
        tool_path
    fi
    cargo build --locked --release -p zerocast
    local host
    host=$(hostname -I 2>/dev/null | awk '{ print $1 }' || true)
    say "serving rtmp://${host:-localhost}/live/audio (Ctrl-C stops)"
    exec "$TARGET_DIR/release/zerocast" --source "${ZEROCAST_SOURCE:-alsa:default}" "$@"
}

ALL_STEPS=(setup fmt clippy test nostd board cross e2e hostile fuzz deb bench)
# The 10-minute soak mostly waits (one zerocast, its players, an nginx), so `all` runs it in the
# background from the start of this step until it must be over, before `bench` measures CPU.
SOAK_FROM=fuzz
SOAK_UNTIL=bench

cmd_all() {
    local step start secs failed=() lines=() log="$TARGET_DIR/ci-all.log"
    mkdir -p "$TARGET_DIR"
    : >"$log"
    local soak_pid= soak_start= soak_log="$TARGET_DIR/ci-soak.log"
    for step in "${ALL_STEPS[@]}"; do
        if [[ $step == "$SOAK_FROM" && ${#failed[@]} -eq 0 ]]; then
            say "ci/run.sh soak (in the background until $SOAK_UNTIL)"
            soak_start=$SECONDS
            bash "$ROOT/ci/run.sh" soak >"$soak_log" 2>&1 &
            soak_pid=$!
        fi
        if [[ $step == "$SOAK_UNTIL" && -n $soak_pid ]]; then
            say "waiting for the soak"
            if wait "$soak_pid"; then
                lines+=("$(printf '%-7s ok     %4ds (in the background)' soak $((SECONDS - soak_start)))")
            else
                lines+=("$(printf '%-7s FAILED %4ds (in the background)' soak $((SECONDS - soak_start)))")
                failed+=(soak)
            fi
            tee -a "$log" <"$soak_log"
            soak_pid=
        fi
        say "ci/run.sh $step"
        start=$SECONDS
        # A child process per step: `set -e` does not apply inside an `if` condition. The log
        # is read back for the test totals below.
        if BENCH_QUICK=${BENCH_QUICK:-1} bash "$ROOT/ci/run.sh" "$step" 2>&1 | tee -a "$log"; then
            secs=$((SECONDS - start))
            lines+=("$(printf '%-7s ok     %4ds' "$step" "$secs")")
        else
            secs=$((SECONDS - start))
            lines+=("$(printf '%-7s FAILED %4ds' "$step" "$secs")")
            failed+=("$step")
            # Nothing after a failed setup can work.
            [[ $step == setup ]] && break
        fi
        echo "time: $step ${secs}s"
    done
    printf '\n==> summary\n'
    printf '%s\n' "${lines[@]}"
    printf 'total   %ds\n' "$SECONDS"
    # Every libtest summary of the run (host tests, the core's tests under qemu, end-to-end).
    grep -E '^test result: ' "$log" |
        sed -E 's/.* ([0-9]+) passed; ([0-9]+) failed.*/\1 \2/' |
        awk '{ p += $1; f += $2 } END { printf "tests: %d passed, %d failed\n", p, f }'
    if [[ ${#failed[@]} -gt 0 ]]; then
        echo "ci: failed steps: ${failed[*]}"
        return 1
    fi
    echo "ci: all $((${#ALL_STEPS[@]} + 1)) steps ok (the soak included)"
}

main() {
    local cmd=${1:-}
    case $cmd in
    setup | fmt | clippy | test | nostd | board | cross | fuzz | e2e | hostile | deb | all | bench | soak)
        [[ $# -eq 1 ]] || die "ci/run.sh $cmd takes no arguments"
        "cmd_$cmd"
        ;;
    serve)
        shift
        cmd_serve "$@"
        ;;
    *)
        sed -n '2,12p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'
        [[ -z $cmd || $cmd == -h || $cmd == --help ]] || die "unknown command: $cmd"
        ;;
    esac
}

main "$@"
