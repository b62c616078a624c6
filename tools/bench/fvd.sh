#!/usr/bin/env bash
# Speed and memory of `reel eval fvd`: the bundled Shapes World feature network on 64 + 64
# clips, and a full-size I3D (random weights, tools/bench/i3d_random_full.py) on 2 + 2 clips
# of 16 frames at 224x224. Wall time and peak RSS from /usr/bin/time -v. Results go in
# BENCHMARKS.md.
set -euo pipefail
cd "$(dirname "$0")/../.."
cargo build --release -q
reel=target/release/reel
dir=runs/bench-fvd
rm -rf "$dir" && mkdir -p "$dir"
$reel -q data synth --out "$dir/fset" --count 64 --format mp4 >/dev/null
$reel -q data synth --out "$dir/i3dset" --count 2 --width 224 --height 224 --frames 16 --format mp4 >/dev/null
python3 tools/bench/i3d_random_full.py "$dir/i3d_full.safetensors"
run() { # label, command...
    local label=$1; shift
    /usr/bin/time -f "$label: wall %e s, peak RSS %M KB" "$@" >/dev/null
}
run shapes-features-v1 $reel -q eval fvd "$dir/fset" "$dir/fset" --json
run i3d-full $reel -q eval fvd "$dir/i3dset" "$dir/i3dset" --features "$dir/i3d_full.safetensors" --batch 2 --json
