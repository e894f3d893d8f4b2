#!/usr/bin/env bash
# Fuzzes Rivulet's loaders and compilers with cargo-fuzz (libFuzzer).
#
#   scripts/fuzz.sh [SECONDS] [TARGET...]
#
# Runs each target (default: all of them: flow_loader template jsonpath record) for SECONDS
# (default 60). Corpora grow in fuzz/corpus/TARGET (seeded from fuzz/seeds/TARGET); a crash,
# timeout or memory blow-up is kept as fuzz/artifacts/TARGET/crash-* (timeout-*, oom-*), the
# remaining targets still run, and the script exits 1. Reproduce one with
#   cargo +nightly fuzz run TARGET fuzz/artifacts/TARGET/crash-...     (from fuzz/)
# and keep it as a regression test (crates/mapping) or under fuzz/regressions/.
#
# cargo-fuzz needs a nightly toolchain (libFuzzer's coverage instrumentation and sanitizers use
# -Z flags). It is installed when missing (`cargo install cargo-fuzz --locked`). Without nightly
# the script says so and only builds the targets with stable cargo, as plain binaries that link
# libFuzzer without coverage feedback: it proves they compile, it does not fuzz them.
#
# Environment: CARGO_TARGET_DIR as usual; FUZZ_JOBS (default 1) parallel jobs per target;
# FUZZ_ARGS extra libFuzzer flags.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root/fuzz"

seconds="${1:-60}"
shift || true
if [[ ! "$seconds" =~ ^[0-9]+$ ]]; then
    echo "usage: scripts/fuzz.sh [SECONDS] [TARGET...]" >&2
    exit 2
fi
targets=("$@")
if [[ ${#targets[@]} -eq 0 ]]; then
    targets=(flow_loader template jsonpath record)
fi

# Longest input per target: templates are refused above 16 KiB, paths above 4 KiB.
max_len() {
    case "$1" in
        template) echo 20000 ;;
        jsonpath) echo 5000 ;;
        *) echo 8192 ;;
    esac
}

if ! rustup toolchain list 2>/dev/null | grep -q '^nightly'; then
    echo "fuzz.sh: no nightly toolchain; trying: rustup toolchain install nightly --profile minimal" >&2
    if ! rustup toolchain install nightly --profile minimal >&2; then
        cat >&2 <<'MSG'
fuzz.sh: cargo-fuzz needs a nightly Rust toolchain (libFuzzer's coverage instrumentation and
the sanitizers are enabled with -Z flags), and none could be installed here. Building the
targets with stable instead, as plain binaries that link libFuzzer without coverage, and running
them on random mutations of the seeds: this checks that they compile and catches shallow
crashes; it is not coverage-guided fuzzing. Install nightly to fuzz for real.
MSG
        cargo +stable build --release --bins
        bin="${CARGO_TARGET_DIR:-target}/release"
        status=0
        for t in "${targets[@]}"; do
            mkdir -p "artifacts/$t"
            echo "== $t: ${seconds}s (no coverage feedback)" >&2
            "$bin/$t" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 \
                -max_len="$(max_len "$t")" -artifact_prefix="artifacts/$t/" "seeds/$t" || status=1
        done
        exit "$status"
    fi
fi

if ! cargo +nightly fuzz --version >/dev/null 2>&1; then
    echo "fuzz.sh: installing cargo-fuzz" >&2
    cargo install cargo-fuzz --locked
fi

failed=()
for t in "${targets[@]}"; do
    mkdir -p "corpus/$t" "artifacts/$t"
    extra=()
    if [[ -f "dicts/$t.dict" ]]; then
        extra+=("-dict=dicts/$t.dict")
    fi
    if [[ "${FUZZ_JOBS:-1}" -gt 1 ]]; then
        extra+=("-jobs=$FUZZ_JOBS" "-workers=$FUZZ_JOBS")
    fi
    echo "== $t: ${seconds}s" >&2
    # -timeout: one input taking longer is a hang; -rss_limit_mb: memory blow-ups are crashes.
    # shellcheck disable=SC2086
    if ! cargo +nightly fuzz run -O "$t" "corpus/$t" "seeds/$t" -- \
        -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -max_len="$(max_len "$t")" \
        -artifact_prefix="artifacts/$t/" -print_final_stats=1 "${extra[@]}" ${FUZZ_ARGS:-}; then
        failed+=("$t")
    fi
done

kept=$(find artifacts -type f \( -name 'crash-*' -o -name 'timeout-*' -o -name 'oom-*' -o -name 'leak-*' \) 2>/dev/null | sort)
if [[ -n "$kept" ]]; then
    echo "fuzz.sh: inputs that failed a target (kept):" >&2
    echo "$kept" | sed 's/^/  fuzz\//' >&2
fi
if [[ ${#failed[@]} -gt 0 ]]; then
    echo "fuzz.sh: failed: ${failed[*]}" >&2
    exit 1
fi
echo "fuzz.sh: no crash in ${targets[*]} (${seconds}s each)" >&2
