#!/usr/bin/env bash
# Evaluates a text-to-video model the way MODEL_CARD.md reports shapes-v1, with prompt
# adherence read from pixels:
#   targets      held-out triples in the spec's scoring case (one object, static camera, flat,
#                neutral): the quality targets, with a Fréchet distance to real clips of the set
#   train        train-split triples, same scenes: the gap to `targets` is what composing
#                unseen (colour, shape, motion) triples costs
#   holdout      held-out triples in every kind of scene (two objects, cameras, styles, moods)
#   paraphrases  held-out and train triples said in words outside the caption lists
# and the scorer's own ceiling: real clips of `targets` and `holdout`, through MP4 as the
# generated clips are. An HTML report of each generated set.
#
#   bash tools/eval-shapes-v1.sh [MODEL] [OUT]     # defaults: shapes-v1, runs/eval-shapes-v1
#
# 64 + 64 + 64 + 32 clips at the model's default settings (about 12 minutes on 2 cores at
# 64x64); the real clips are rendered at the model's default size too.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --quiet
reel=target/release/reel
model=${1:-shapes-v1}
out=${2:-runs/eval-shapes-v1}
n=${SAMPLES:-64}
mkdir -p "$out"
read -r width height < <("$reel" -q model info "$model" --json | python3 -c '
import json, os, sys
d = json.load(open(os.path.join(json.load(sys.stdin)["path"], "model_index.json"))).get("reel", {})
print(d.get("width", 64), d.get("height", 64))')
real() { # name split scenes
    if ! grep -qs "\"width\":$width,\"height\":$height," "$out/real-$1/manifest.jsonl"; then
        rm -rf "$out/real-$1"
        "$reel" -q data synth --out "$out/real-$1" --count "$n" --split "$2" --scenes "$3" --seed 1 --format mp4 \
            --width "$width" --height "$height" > /dev/null
    fi
    "$reel" -q eval adherence --manifest "$out/real-$1/manifest.jsonl" --json > "$out/real-$1.json"
}
real targets holdout scoring
real holdout holdout all
"$reel" -q eval adherence --model "$model" --split holdout --scenes scoring --samples "$n" --seed 0 --out "$out/targets" \
    --reference "$out/real-targets" --json > "$out/targets.json"
"$reel" -q eval adherence --model "$model" --split train --scenes scoring --samples "$n" --seed 0 --out "$out/train" --json > "$out/train.json"
"$reel" -q eval adherence --model "$model" --split holdout --samples "$n" --seed 0 --out "$out/holdout" --json > "$out/holdout.json"
"$reel" -q eval adherence --model "$model" --prompts configs/eval/paraphrases.jsonl --samples ${PARAPHRASES:-32} --out "$out/paraphrases" --json > "$out/paraphrases.json"
for set in targets train holdout paraphrases; do
    "$reel" -q eval report "$out/$set" > /dev/null
done
python3 - "$out" <<'PY'
import json, sys
out = sys.argv[1]
for name in ("targets", "train", "holdout", "paraphrases", "real-targets", "real-holdout"):
    r = json.load(open(f"{out}/{name}.json"))
    acc = " ".join(f"{k} {v:.3f}" for k, v in sorted(r["accuracy"].items()))
    extra = f" frechet {r['frechet']['frechet']:.2f}" if r.get("frechet") else ""
    print(f"{name:12} n {r['n']:3}  all-correct {r['all_correct']:.3f}  {acc}{extra}")
PY
