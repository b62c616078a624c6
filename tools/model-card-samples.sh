#!/usr/bin/env bash
# The sample contact sheets in MODEL_CARD.md: one prompt per row of docs/model-card/samples.md,
# generated at the model's defaults with seed 0 and tiled every other frame (9 of 17).
#
#   bash tools/model-card-samples.sh [MODEL]      # default: shapes-v1
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --quiet
reel=target/release/reel
model=${1:-shapes-v1}
out=docs/model-card/samples
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
mkdir -p "$out"
prompts=(
    # held-out triples (never seen in training), the spec's scoring case
    "a red circle moving left on a black background"
    "a green square shrinking on a gray background"
    "a blue triangle growing at night"
    "a yellow square falling on sand"
    # train-split triples with the other caption words
    "a cyan ball rising on a gray background, the camera pans left"
    "gloomy pixel-art video of an orange box falling on sand"
    "outlined video of a big white triangle moving left at night"
    # two objects; and words outside the caption lists
    "a purple disc moving left and a yellow block moving right on a black background"
    "a crimson ball drifting to the right on a black background"
)
{
    echo "| # | prompt | frames 0, 2, …, 16 |"
    echo "|---|---|---|"
} > "$tmp/table.md"
for i in "${!prompts[@]}"; do
    n=$(printf '%02d' "$i")
    "$reel" -q generate "${prompts[$i]}" --model "$model" --seed 0 -o "$tmp/$n.mp4" > /dev/null
    "$reel" -q video sheet "$tmp/$n.mp4" --every 2 --columns 9 -o "$out/$n.png" > /dev/null
    echo "| $i | ${prompts[$i]} | ![]($n.png) |" >> "$tmp/table.md"
done
mv "$tmp/table.md" "$out/README.md"
echo "$out"
