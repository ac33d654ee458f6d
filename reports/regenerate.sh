#!/usr/bin/env bash
# Regenerates the reports in this directory from fresh gate runs; see README.md here.
# Usage: reports/regenerate.sh [-n 2]   (extra arguments go to every pytest run)
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

# Every rule on every shipped backend: the reference engines (torch, numpy), and the adapters for
# real alternative engines (mygrad with its known gaps; jax, a functional engine).
run torch --backend=torch "$@"
run numpy --backend=numpy "$@"
run mygrad --backend=mygrad --expected-failures=specs/expected-failures/mygrad.toml "$@"
run jax --backend=jax "$@"
python -m conformance report reports/results/{torch,numpy,mygrad,jax}.json -o reports/index.html
python -m conformance rules --format markdown -o docs/rules  # the rulebook, from specs/ alone

# Deliberately broken adapters (tests/broken/), on the broadcasting rules; one with an
# expected-failures file, to show expected failures beside failures.
run broken-align --backend=tests.broken.broadcasting:AddAlignsLeading --specs=specs/broadcasting.toml \
    --expected-failures=reports/broken-expected-failures.toml "$@"
run broken-mul --backend=tests.broken.broadcasting:MulGradNotReduced --specs=specs/broadcasting.toml "$@"
python -m conformance report reports/results/broken-align.json reports/results/broken-mul.json -o reports/broken.html
