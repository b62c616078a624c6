#!/usr/bin/env bash
# Reel against diffusers on the same weights, shapes and thread count; one JSON line per run.
# Usage: tools/bench/models.sh [PYTHON]   (PYTHON: an interpreter with torch + diffusers)
set -euo pipefail
cd "$(dirname "$0")/../.."
PY=${1:-/opt/reel-ref/bin/python}
REEL=target/release/reel
W=${BENCH_DIR:-/tmp/reel-bench}
mkdir -p "$W"
export RAYON_NUM_THREADS=2
both() { # component dir args...
  local c=$1 d=$2; shift 2
  $REEL bench "$c" "$d" "$@"
  "$PY" tools/reference/bench.py "$c" --model "$d" --threads 2 "$@"
}
make() { "$PY" tools/reference/bench.py "$1" --make "$2" --out "$3" >/dev/null; }
both transformer crates/reel-models/tests/fixtures/wan_transformer/tiny_a/transformer --frames 17 --height 64 --width 64 --iters 20
make transformer configs/bench/bundled-size-transformer.json "$W/bundled-transformer"
both transformer "$W/bundled-transformer" --frames 17 --height 64 --width 64 --iters 10
both transformer "$W/bundled-transformer" --frames 33 --height 128 --width 128 --iters 5
make transformer configs/bench/wan-1.3b-one-block.json "$W/wan-1.3b-block"
both transformer "$W/wan-1.3b-block" --frames 33 --height 256 --width 448 --text-len 512 --iters 3
make vae configs/bench/bundled-size-vae.json "$W/bundled-vae"
both vae "$W/bundled-vae" --frames 17 --height 64 --width 64 --iters 5
make vae configs/bench/wan2.1-vae.json "$W/wan-vae"
both vae "$W/wan-vae" --frames 17 --height 128 --width 128 --iters 2
