#!/usr/bin/env bash
# Runs every cargo-fuzz target in fuzz/ for SECONDS each (default 60). Not part of CI.
#
#   bash scripts/fuzz.sh [SECONDS] [TARGET...]
#
# Needs a nightly toolchain and cargo-fuzz; installs both when missing. The committed seeds are
# fuzz/corpus/<target>/ (read only here); what the fuzzer finds goes to fuzz/found/<target>/
# (ignored by git). A crash stops with its input in fuzz/artifacts/<target>/: turn it into a
# unit test beside the code it crashed, fix it, and add the input to fuzz/corpus/<target>/.
set -euo pipefail
cd "$(dirname "$0")/.."

seconds="${1:-60}"
shift || true
if ! [[ "$seconds" =~ ^[0-9]+$ ]] || [ "$seconds" -eq 0 ]; then
    echo "usage: $0 [SECONDS>0] [TARGET...]" >&2
    exit 2
fi

rustup toolchain list | grep -q '^nightly' || rustup toolchain install nightly --profile minimal
command -v cargo-fuzz >/dev/null || cargo install --locked cargo-fuzz

targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
    mapfile -t targets < <(cargo +nightly fuzz list)
fi

# Build all first (one compile), then run each for its share of time.
cargo +nightly fuzz build -O

failed=()
marker="$(mktemp)"
trap 'rm -f "$marker"' EXIT
for t in "${targets[@]}"; do
    mkdir -p "fuzz/found/$t"
    echo "== $t (${seconds}s)"
    if ! cargo +nightly fuzz run -O "$t" "fuzz/found/$t" "fuzz/corpus/$t" -- \
        -max_total_time="$seconds" -rss_limit_mb=512 -max_len=65536 -print_final_stats=1 \
        2>&1 | grep -E '^(#[0-9]+ +DONE|stat::number_of_executed_units|stat::peak_rss_mb|==[0-9]+==|SUMMARY|artifact_prefix|Test unit written)' ; then
        :
    fi
    # Only what this run found (older finds stay in fuzz/artifacts/ until removed).
    if [ -n "$(find "fuzz/artifacts/$t" -newer "$marker" \( -name 'crash-*' -o -name 'oom-*' -o -name 'timeout-*' \) 2>/dev/null)" ]; then
        failed+=("$t")
    fi
done

if [ ${#failed[@]} -gt 0 ]; then
    echo "crashes found in: ${failed[*]} (inputs under fuzz/artifacts/)" >&2
    exit 1
fi
echo "no crashes"
