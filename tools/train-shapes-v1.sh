#!/usr/bin/env bash
# Trains the bundled model shapes-v1 from nothing, step by step; run it again after an
# interruption and it goes on where it stopped (each training step resumes from its newest
# checkpoint; finished steps are skipped). Hours on 2 CPU cores: see MODEL_CARD.md.
#
#   bash tools/train-shapes-v1.sh            # everything, ending in models/shapes-v1
#
# Steps: 1. the VAE (configs/shapes-v1/vae.toml) → runs/shapes-v1-vae
#        2. its export with latent statistics   → runs/shapes-v1-vae-model
#        3. a latent cache of train-split clips  → runs/shapes-v1-cache
#        4. transformer + text encoder (configs/shapes-v1/transformer.toml) → runs/shapes-v1-transformer,
#           exported                             → runs/shapes-v1-transformer-model
#        5. a second latent cache, half of its clips from the scoring case → runs/shapes-v1-cache-mix
#        6. the transformer's second stage on it (configs/shapes-v1/transformer-2.toml)
#                                                → runs/shapes-v1-transformer-2
#        7. the VAE decoder's second stage on 17-frame clips, encoder frozen
#           (configs/shapes-v1/vae-decoder.toml) → runs/shapes-v1-vae-decoder; it shares only
#           the (fixed) encoder with steps 4-6, so it may run beside them
#        8. step 6's export                      → runs/shapes-v1-transformer-2-model
#        9. sin-cos absolute positions added (tools/add-positions.py, a no-op at first), and
#           the transformer's third stage (configs/shapes-v1/transformer-3.toml)
#                                                → runs/shapes-v1-transformer-3, exported
#       10. its fourth stage, loss weighted towards objects (configs/shapes-v1/transformer-4.toml)
#                                                → runs/shapes-v1-transformer-4
#       11. the export                           → runs/shapes-v1-transformer-4-model, with step 7's
#           weights under step 2's VAE config (its latent statistics are the ones the transformer
#           learnt with)
#       12. a 128x128 latent cache, half of its clips from the scoring case (two halves side
#           by side, merged)                     → runs/shapes-v1-cache-128
#       13. the transformer at 128x128 (configs/shapes-v1/transformer-128.toml)
#                                                → runs/shapes-v1-transformer-128, exported
#       14. first-frame conditioning at 128x128 (configs/shapes-v1/transformer-128-first-frame.toml),
#           stopped at step 1 200                → runs/shapes-v1-first-frame-128
#       15. the export                           → models/shapes-v1 (the VAE comes from step 11's)
#       16. the layout planner with silhouettes, the strength its layouts are noised to, and
#           the layout's first frame held with guidance 0.3 (`reel train planner`,
#           docs/planner.md, docs/generate.md)     → models/shapes-v1/planner
# Needs numpy and safetensors (pip) for step 9.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --quiet
reel=target/release/reel
CACHE_CLIPS=${CACHE_CLIPS:-16000}

train() { # config run-dir
    if [ -d "$2/checkpoints" ] && [ -n "$(ls -A "$2/checkpoints")" ]; then
        "$reel" train "$1" --out "$2" --resume
    else
        "$reel" train "$1" --out "$2"
    fi
}

train configs/shapes-v1/vae.toml runs/shapes-v1-vae
[ -f runs/shapes-v1-vae-model/model_index.json ] || "$reel" train export runs/shapes-v1-vae runs/shapes-v1-vae-model --latent-stats 256
[ -f runs/shapes-v1-cache/index.json ] || "$reel" data cache --model runs/shapes-v1-vae-model --out runs/shapes-v1-cache \
    --width 64 --height 64 --frames 17 --fps 8 --fps 16 --count "$CACHE_CLIPS"
train configs/shapes-v1/transformer.toml runs/shapes-v1-transformer
[ -f runs/shapes-v1-transformer-model/model_index.json ] || "$reel" train export runs/shapes-v1-transformer runs/shapes-v1-transformer-model
[ -f runs/shapes-v1-cache-mix/index.json ] || "$reel" data cache --model runs/shapes-v1-vae-model --out runs/shapes-v1-cache-mix \
    --width 64 --height 64 --frames 17 --fps 8 --fps 16 --count "${CACHE_MIX_CLIPS:-12000}" --scoring-share 0.5
train configs/shapes-v1/transformer-2.toml runs/shapes-v1-transformer-2
train configs/shapes-v1/vae-decoder.toml runs/shapes-v1-vae-decoder
[ -f runs/shapes-v1-vae-decoder-model/model_index.json ] || "$reel" train export runs/shapes-v1-vae-decoder runs/shapes-v1-vae-decoder-model --latent-stats 0
[ -f runs/shapes-v1-transformer-2-model/model_index.json ] || "$reel" train export runs/shapes-v1-transformer-2 runs/shapes-v1-transformer-2-model
[ -f runs/shapes-v1-transformer-2-positions/model_index.json ] || python3 tools/add-positions.py runs/shapes-v1-transformer-2-model runs/shapes-v1-transformer-2-positions
train configs/shapes-v1/transformer-3.toml runs/shapes-v1-transformer-3
[ -f runs/shapes-v1-transformer-3-model/model_index.json ] || "$reel" train export runs/shapes-v1-transformer-3 runs/shapes-v1-transformer-3-model
train configs/shapes-v1/transformer-4.toml runs/shapes-v1-transformer-4
if [ ! -f runs/shapes-v1-transformer-4-model/model_index.json ]; then
    "$reel" train export runs/shapes-v1-transformer-4 runs/shapes-v1-transformer-4-model
    cp runs/shapes-v1-vae-decoder-model/vae/diffusion_pytorch_model.safetensors runs/shapes-v1-transformer-4-model/vae/
fi
if [ ! -f runs/shapes-v1-cache-128/index.json ]; then
    pids=()
    for k in 0 1; do
        [ -f runs/shapes-v1-cache-128-$k/index.json ] || "$reel" data cache --model runs/shapes-v1-transformer-4-model \
            --out runs/shapes-v1-cache-128-$k --width 128 --height 128 --frames 17 --fps 8 --fps 16 --count 1280 \
            --scoring-share 0.5 --seed $((100 + k)) &
        pids+=($!)
    done
    for pid in "${pids[@]}"; do wait "$pid"; done  # a failed half stops the script (set -e)
    python3 tools/cache-merge.py runs/shapes-v1-cache-128 runs/shapes-v1-cache-128-0 runs/shapes-v1-cache-128-1
fi
train configs/shapes-v1/transformer-128.toml runs/shapes-v1-transformer-128
[ -f runs/shapes-v1-transformer-128-model/model_index.json ] || "$reel" train export runs/shapes-v1-transformer-128 runs/shapes-v1-transformer-128-model
if [ -d runs/shapes-v1-first-frame-128/checkpoints ] && [ -n "$(ls -A runs/shapes-v1-first-frame-128/checkpoints)" ]; then
    "$reel" train configs/shapes-v1/transformer-128-first-frame.toml --out runs/shapes-v1-first-frame-128 --resume --max-steps 1200
else
    "$reel" train configs/shapes-v1/transformer-128-first-frame.toml --out runs/shapes-v1-first-frame-128 --max-steps 1200
fi
"$reel" train export runs/shapes-v1-first-frame-128 models/shapes-v1
"$reel" train planner models/shapes-v1 --layout-strength 0.5 --layout-first-frame true --layout-guidance 0.3 --layout-erosion 1.5 --layout-refine 1
du -sh models/shapes-v1
