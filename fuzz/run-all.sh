#!/usr/bin/env bash
# Runs every fuzz target in turn, one job each, for TARGET_SECONDS seconds (default 600), on
# its corpus in fuzz/corpus/<target>; logs to fuzz/artifacts/logs/<target>.log and prints
# each target's final figures. Crashes land in fuzz/artifacts/<target>/.
#
# Usage: fuzz/run-all.sh [TARGET_SECONDS] [TARGET...]
# Needs cargo-fuzz (`cargo install cargo-fuzz --locked`) and a nightly toolchain
# (TOOLCHAIN=+nightly by default; TOOLCHAIN= with RUSTC_BOOTSTRAP=1 uses the default one).
set -euo pipefail

seconds="${1:-600}"
shift || true
cd "$(dirname "$0")"
toolchain="${TOOLCHAIN-+nightly}"
targets=("$@")
if [ "${#targets[@]}" -eq 0 ]; then
    mapfile -t targets < <(cargo $toolchain fuzz list)
fi

mkdir -p artifacts/logs
cargo $toolchain fuzz build --debug-assertions

status=0
for target in "${targets[@]}"; do
    mkdir -p "corpus/$target"
    log="artifacts/logs/$target.log"
    echo "== $target: ${seconds}s, log in fuzz/$log"
    if ! cargo $toolchain fuzz run --debug-assertions "$target" "corpus/$target" -- \
        -max_total_time="$seconds" -print_final_stats=1 -timeout=10 \
        -rss_limit_mb=2048 >"$log" 2>&1; then
        echo "!! $target failed: see fuzz/$log and fuzz/artifacts/$target/"
        status=1
    fi
    grep -E '^#[0-9]+[[:space:]]+DONE|^Done [0-9]+ runs' "$log" | tail -n 2 || true
    echo "   corpus: $(find "corpus/$target" -type f | wc -l) files, $(du -sh "corpus/$target" | cut -f1)"
done
exit "$status"
