#!/usr/bin/env bash
# Evaluates a text-to-video model the way MODEL_CARD.md reports shapes-v1: prompt adherence
# read from pixels on the Shapes World held-out triples (the quality targets), on train-split
# prompts, and on paraphrases outside the caption word lists; a Fréchet distance against real
# held-out clips; an HTML report of each set.
#
#   bash tools/eval-shapes-v1.sh [MODEL] [OUT]     # defaults: shapes-v1, runs/eval-shapes-v1
#
# 64 + 64 + 32 clips at the model's default settings (about 5 minutes on 2 cores).
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --quiet
reel=target/release/reel
model=${1:-shapes-v1}
out=${2:-runs/eval-shapes-v1}
mkdir -p "$out"
[ -f "$out/real-holdout/manifest.jsonl" ] || "$reel" -q data synth --out "$out/real-holdout" --count ${SAMPLES:-64} --split holdout --seed 1 --format mp4 > /dev/null
"$reel" -q eval adherence --model "$model" --split holdout --samples ${SAMPLES:-64} --seed 0 --out "$out/holdout" \
    --reference "$out/real-holdout" --json > "$out/holdout.json"
"$reel" -q eval adherence --model "$model" --split train --samples ${SAMPLES:-64} --seed 0 --out "$out/train" --json > "$out/train.json"
"$reel" -q eval adherence --model "$model" --prompts configs/eval/paraphrases.jsonl --samples ${PARAPHRASES:-32} --out "$out/paraphrases" --json > "$out/paraphrases.json"
for set in holdout train paraphrases; do
    "$reel" -q eval report "$out/$set" > /dev/null
done
python3 - "$out" <<'PY'
import json, sys
out = sys.argv[1]
for name in ("holdout", "train", "paraphrases"):
    r = json.load(open(f"{out}/{name}.json"))
    acc = " ".join(f"{k} {v:.3f}" for k, v in sorted(r["accuracy"].items()))
    extra = f" frechet {r['frechet']['frechet']:.2f}" if r.get("frechet") else ""
    print(f"{name:12} n {r['n']:3}  all-correct {r['all_correct']:.3f}  {acc}{extra}")
PY
