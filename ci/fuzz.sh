#!/usr/bin/env bash
# Runs every cargo-fuzz target of zerocast-core (core/fuzz) for FUZZ_SECONDS each (default 30)
# and fails on any crash, timeout or out-of-memory, printing each target's executions.
#
# Fuzzing needs nightly-only rustc flags; RUSTC_BOOTSTRAP=1 lets the stable toolchain accept them.
# No sanitizer: the core forbids `unsafe` and links no C, so AddressSanitizer could only find
# what Rust's own checks already turn into a panic, at half the speed. Debug assertions are on so
# an integer overflow is a crash, not a silent wrap.
#
# Seeds: core/fuzz/seeds/<target>/ (committed) is read; core/fuzz/corpus/<target>/ (ignored by
# git) keeps what the fuzzer finds between local runs. Crashes land in core/fuzz/artifacts/<target>/.
set -euo pipefail

# shellcheck source=ci/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
tool_path
cd "$ROOT/core/fuzz"

FUZZ_SECONDS=${FUZZ_SECONDS:-30}
[[ $FUZZ_SECONDS =~ ^[1-9][0-9]*$ ]] || die "FUZZ_SECONDS must be a positive number of seconds"
export RUSTC_BOOTSTRAP=1
FUZZ_FLAGS=(--sanitizer none --debug-assertions)

mapfile -t targets < <(cargo fuzz list)
if [[ ${#targets[@]} -eq 0 ]]; then
    # An empty list must not look like a pass in CI: every parser of peer input has a target.
    [[ -n ${CI:-} ]] && die "core/fuzz has no fuzz targets ('cargo fuzz list' is empty)"
    echo "fuzz: no targets in core/fuzz yet"
    exit 0
fi
echo "fuzz: ${#targets[@]} targets, ${FUZZ_SECONDS}s each: ${targets[*]}"

# One build for all targets, so the per-target runs below only fuzz.
cargo fuzz build "${FUZZ_FLAGS[@]}"

log_dir="$TARGET_DIR/fuzz-logs"
mkdir -p "$log_dir"
summary=()
failed=()
for t in "${targets[@]}"; do
    say "fuzz: $t"
    dirs=("corpus/$t")
    mkdir -p "corpus/$t"
    [[ -d seeds/$t ]] && dirs+=("seeds/$t")
    log="$log_dir/$t.log"
    rc=0
    # -timeout: one input taking 10 s is a hang; -rss_limit_mb: the core's memory is fixed, so
    # growth is a bug; -print_final_stats gives the execution count below.
    cargo fuzz run "${FUZZ_FLAGS[@]}" "$t" "${dirs[@]}" -- \
        -max_total_time="$FUZZ_SECONDS" -timeout=10 -rss_limit_mb=512 -print_final_stats=1 \
        >"$log" 2>&1 || rc=$?
    execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
    if [[ $rc -ne 0 ]]; then
        tail -n 40 "$log"
        summary+=("$(printf '%-20s FAILED (exit %s) after %s executions, artifacts in core/fuzz/artifacts/%s' "$t" "$rc" "${execs:-?}" "$t")")
        failed+=("$t")
    else
        summary+=("$(printf '%-20s ok  %12s executions in %ss' "$t" "${execs:-?}" "$FUZZ_SECONDS")")
    fi
done

printf '\n==> fuzz summary\n'
printf '%s\n' "${summary[@]}"
[[ ${#failed[@]} -eq 0 ]] || die "fuzz targets failed: ${failed[*]}"
