#!/usr/bin/env bash
# CPU and wall time of 10 training steps of shapes-v1's transformer
# (configs/bench/shapes-v1-transformer-step.toml) from a 32-clip latent cache, twice.
# The VAE only shapes the latents here (one training step of the bench VAE, no latent
# statistics): step times do not depend on its weights. Results go in BENCHMARKS.md.
set -euo pipefail
cd "$(dirname "$0")/../.."
cargo build --release -q
reel=target/release/reel
rm -rf runs/bench-vae runs/bench-vae-model runs/bench-shapes-cache runs/bench-step
$reel -q train configs/bench/vae-train-images.toml --out runs/bench-vae --max-steps 1 >/dev/null
$reel -q train export runs/bench-vae runs/bench-vae-model --latent-stats 0 >/dev/null
$reel -q data cache --model runs/bench-vae-model --out runs/bench-shapes-cache --count 32 --fps 8 --fps 16 >/dev/null
for round in 1 2; do
    rm -rf runs/bench-step
    /usr/bin/time -f "round $round: CPU %U + %S s, wall %e s" \
        $reel -q train configs/bench/shapes-v1-transformer-step.toml --out runs/bench-step --max-steps 10 >/dev/null
done
