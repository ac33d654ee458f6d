#!/usr/bin/env bash
# Regenerates the reports in this directory from fresh gate runs; see README.md here.
# Usage: [WORKERS=1,2] reports/regenerate.sh [PYTEST-ARGS...]   (extra arguments go to every pytest run)
set -euo pipefail
cd "$(dirname "$0")/.."
mkdir -p reports/results

# run NAME PYTEST-ARGS...: one gate run, its results in reports/results/NAME.json.
# Exit code 1 is a broken gate, which the broken adapters are meant to produce; anything else stops.
run() {
    local name=$1
    shift
    python -m pytest conformance -q -p no:cacheprovider --repro-dir=".conformance/reports/repro-$name" \
        --results-json="reports/results/$name.json" "$@" | tail -n 25 || [ "${PIPESTATUS[0]}" -eq 1 ]
}

# Every rule on every shipped backend: the reference engines (torch, numpy), torch through torch.func only,
# and the adapters for real alternative engines, each with its findings where it has some. The benchmark runs
# each with -n 1 and -n 2 (WORKERS overrides: WORKERS=2 for one run each); the report is built from the results
# of the run with the most workers, which the benchmark keeps in reports/results/.
BACKENDS=(torch numpy torch-func mygrad jax autograd paddle tensorflow mlx tinygrad)
# engine_args NAME: a backend's own options. jax and tinygrad compile per fresh shape: each rule draws its shapes
# from 4 fixed shape sets (docs/engines.md); tinygrad's slowest check takes seconds on a fresh kernel cache (8 s
# measured), the timeout leaves room. MLX's known spin (specs/findings/mlx.toml) is cut short: no other check of it takes a second.
engine_args() {
    case "$1" in
        jax) echo "--shape-pool=4" ;;
        tinygrad) echo "--shape-pool=4 --check-timeout=600" ;;
        mlx) echo "--check-timeout=30" ;;
    esac
}
# JAX's persistent compilation cache, every executable kept (docs/engines.md); other engines ignore these variables.
export JAX_COMPILATION_CACHE_DIR="${JAX_COMPILATION_CACHE_DIR:-$HOME/.cache/jax}"
export JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS=0 JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES=0
bench=()
for name in "${BACKENDS[@]}"; do
    [ -n "$(engine_args "$name")" ] && bench+=(--engine-args "$name=$(engine_args "$name")")
done
python -m conformance bench --backends "$(IFS=,; echo "${BACKENDS[*]}")" --workers "${WORKERS:-1,2}" "${bench[@]}" \
    --floor --keep-results reports/results -o reports/benchmarks.json -- "$@"
python -m conformance report $(printf "reports/results/%s.json " "${BACKENDS[@]}") -o reports/index.html --readme README.md
python -m conformance rules --format markdown -o docs/rules  # the rulebook, from specs/ alone
# The scoreboard alone, as headless Chromium renders it: a copy of the report with everything else hidden
if browser=$(command -v chromium || command -v chromium-browser); then
    page=$(mktemp --suffix=.html)
    sed 's|</style>|header, form, main > section:not(#scoreboard) { display: none !important; }\n</style>|' \
        reports/index.html > "$page"
    "$browser" --headless --no-sandbox --disable-gpu --hide-scrollbars --window-size=2000,450 \
        --screenshot=reports/scoreboard.png "file://$page"
    rm -f "$page"
fi

# Deliberately broken adapters (tests/broken/), on the broadcasting rules; one with a
# findings file, to show a finding and its expected failures beside failures.
run broken-align --backend=tests.broken.broadcasting:AddAlignsLeading --specs=specs/broadcasting.toml \
    --findings=reports/broken-findings.toml "$@"
run broken-mul --backend=tests.broken.broadcasting:MulGradNotReduced --specs=specs/broadcasting.toml "$@"
python -m conformance report reports/results/broken-align.json reports/results/broken-mul.json -o reports/broken.html
