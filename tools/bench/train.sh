#!/usr/bin/env bash
# Training throughput at the bundled model's size: Reel (`reel train` from a latent cache)
# beside the same model and loop in PyTorch/diffusers (tools/reference/train_bench.py), same
# thread count. Usage: tools/bench/train.sh [THREADS] (default 2). Results go in BENCHMARKS.md.
set -euo pipefail
cd "$(dirname "$0")/../.."
threads="${1:-2}"
export RAYON_NUM_THREADS="$threads" OMP_NUM_THREADS="$threads"
cargo build --release -q
reel=target/release/reel
rm -rf runs/bench-init runs/bench-init-model runs/bench-cache runs/bench-train
$reel -q train configs/bench/train-init.toml --out runs/bench-init >/dev/null
$reel -q train export runs/bench-init runs/bench-init-model >/dev/null
$reel -q data cache --model runs/bench-init-model --out runs/bench-cache --text --count 32 --frames 17 >/dev/null
$reel -q train configs/bench/train-bundled-size.toml --out runs/bench-train >/dev/null
python3 - <<'PY'
import json, statistics
r = [json.loads(l) for l in open("runs/bench-train/metrics.jsonl")][5:]
print(json.dumps({"impl": "reel", "samples_per_s": statistics.median(x["samples_per_s"] for x in r),
                  "peak_memory_mib": max(x["peak_memory_mib"] for x in r), "steps_timed": len(r)}))
PY
PY=${REEL_REF_PYTHON:-/opt/reel-ref/bin/python}
"$PY" tools/reference/train_bench.py --threads "$threads"
