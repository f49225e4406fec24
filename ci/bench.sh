#!/usr/bin/env bash
# Benchmarks: zerocast against the seed (nginx-rtmp + ffmpeg) in one run, then instruction
# counts of the static armv6 zerocast under qemu-arm -cpu arm1176. Prints numbers; asserts none.
#
#   ci/run.sh bench            full run (~11 minutes, estimated)
#   BENCH_QUICK=1 ci/run.sh bench   shorter windows, one default-player run (157 s measured)
#   BENCH_ZEROCAST=BIN BENCH_MUSL=BIN ci/bench.sh   measure other zerocast binaries (an older
#                                   build, for before/after figures) with this driver
#   BENCH_ONLY=zerocast-http-mp3,icecast-darkice ci/bench.sh   only these servers' phases
#                                   (labels as in the report; all by default); `qemu-insn`
#                                   is the instruction counts (every codec, 1/10/100 players)
#   BENCH_MUSL_CODECS=LIST          the codecs BENCH_MUSL was built with (pcm,adpcm,aac,mp3)
#
# Builds (one at a time, -j2): the release zerocast and the bench crate's zerocast-bench and
# zerocast-load; the static musl zerocast without ALSA, with AAC and MP3; the qemu-insn plugin from
# bench/qemu-insn (QEMU_INSN_DIR overrides); the test suite's fake ALSA card
# (linux-host/tests/alsa_fake/zcfake.c), a capture device without libpulse. Results: target/bench/results.md, logs of
# every process in target/bench/run/. See docs/benchmarks.md.
set -euo pipefail

# shellcheck source=ci/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$ROOT"
tool_path

OUT="${BENCH_OUT:-$TARGET_DIR/bench}"
mkdir -p "$OUT"

say "bench: release build of zerocast, zerocast-load, zerocast-bench"
cargo build --locked --release -j2 -p zerocast -p zerocast-bench

extra=()
QEMU_INSN_DIR=${QEMU_INSN_DIR:-$ROOT/bench/qemu-insn}
# Outside CI a missing part is skipped with a note; in CI it is an error, so a green run means
# every number in the report was measured.
skip() {
    [[ -z ${CI:-} ]] || die "bench: $1"
    echo "bench: qemu-insn part skipped: $1"
}
if [[ ! -f $QEMU_INSN_DIR/insn.c ]]; then
    skip "no $QEMU_INSN_DIR/insn.c"
elif ! command -v qemu-arm >/dev/null || ! command -v cargo-zigbuild >/dev/null; then
    skip "qemu-arm or cargo-zigbuild missing (ci/run.sh setup)"
else
    say "bench: static zerocast (no ALSA; AAC and MP3) for $PI_MUSL_TARGET"
    (
        # The features and flags of `ci/run.sh cross`, so the two share one build.
        pi_env
        export RUSTC_BOOTSTRAP=1 RUSTFLAGS="-C link-self-contained=no $PI_RUSTFLAGS"
        cargo zigbuild --locked --release -j2 -p zerocast --bin zerocast --no-default-features \
            --features aac,mp3 --target "$PI_MUSL_TARGET" -Zbuild-std=std,panic_abort
    )
    plugin="$TARGET_DIR/qemu-insn/libinsn.so"
    mkdir -p "$(dirname "$plugin")"
    if [[ ! -f $plugin || $QEMU_INSN_DIR/insn.c -nt $plugin ]]; then
        # glib's headers only if the plugin source wants them (qemu-plugin.h is bundled).
        # shellcheck disable=SC2046
        gcc -O2 -shared -fPIC $(pkg-config --cflags glib-2.0 2>/dev/null || true) \
            -o "$plugin" "$QEMU_INSN_DIR/insn.c"
    fi
    extra=(--musl "${BENCH_MUSL:-$PI_MUSL_BIN}" --plugin "$plugin"
        --musl-codecs "${BENCH_MUSL_CODECS:-pcm,adpcm,aac,mp3}")
fi

fake="$TARGET_DIR/bench/zcfake/libasound_module_pcm_zcfake.so"
if [[ ! -f /usr/include/alsa/pcm_external.h ]] || ! command -v gcc >/dev/null; then
    [[ -z ${CI:-} ]] || die "bench: no gcc or ALSA headers for the fake card"
    echo "bench: fake-card part skipped: no gcc or /usr/include/alsa/pcm_external.h"
else
    mkdir -p "$(dirname "$fake")"
    # -lasound: its versioned symbols (see linux-host/tests/e2e_alsa_fake.rs).
    gcc -shared -fPIC -O2 -Wall -o "$fake" linux-host/tests/alsa_fake/zcfake.c -lm -lasound
    extra+=(--fake-card "$fake")
fi

quick=()
[[ -n ${BENCH_QUICK:-} && ${BENCH_QUICK} != 0 ]] && quick=(--quick)
[[ -n ${BENCH_ONLY:-} ]] && quick+=(--only "$BENCH_ONLY")
say "bench: running (results in $OUT/results.md)"
"$TARGET_DIR/release/zerocast-bench" "${quick[@]}" --out "$OUT" \
    --zerocast "${BENCH_ZEROCAST:-$TARGET_DIR/release/zerocast}" --load "$TARGET_DIR/release/zerocast-load" \
    "${extra[@]}"
