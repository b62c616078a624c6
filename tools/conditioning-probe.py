#!/usr/bin/env python3
"""How much does each word of a caption help a transformer denoise? For real clips from a
latent cache, noised to a few sigmas, prints the flow-matching loss (velocity MSE) with the
clip's own caption and with one word swapped for a wrong one — the motion, the shape or the
colour — and with the empty caption. A word the model uses costs loss when it is wrong; a
word it ignores costs nothing. A second table weighs the same errors towards objects as
`train.foreground_weight = 10` does (docs/training.md), where a word that only moves or
reshapes an object shows more plainly.

    python3 tools/conditioning-probe.py MODEL CACHE [N] [--motion-only] [--first-frame]

MODEL: a model folder (transformer, text encoder, tokenizer, VAE config for the latent
statistics); CACHE: a `reel data cache` folder made with that VAE; N clips (default 48) of
one object, static camera, whose motion is a translation. Same noise for every caption.
`--motion-only`: any clip whose caption names a translation (a cache whose captions are only
a motion phrase, `tools/cache-subset.py --caption-group`); no shape or colour columns.
`--first-frame`: each clip's first latent frame is shown clean at timestep 0 (a model trained
with `train.first_frame_share`) and the loss is over the other frames only.
Needs numpy and safetensors (pip).
"""
import re
import sys
import tempfile

import numpy as np

from reel_tools import cache_clips, encode_text, noised, run_component

SIGMAS = [0.95, 0.8, 0.6, 0.4, 0.2]
MOTION = {"moving left": "moving right", "moving right": "moving left", "moving up": "moving down", "moving down": "moving up",
          "rising": "sinking", "sinking": "rising", "falling": "rising"}
SHAPE = {"circle": "square", "square": "triangle", "triangle": "circle", "ball": "box", "disc": "block", "box": "ball", "block": "disc"}
COLOUR = {"red": "blue", "blue": "green", "green": "red", "yellow": "purple", "purple": "cyan", "cyan": "orange",
          "orange": "white", "white": "yellow"}


def foreground_weights(x0, weight=10.0, low=3.5, high=6.0):
    """The trainer's latent foreground weights `[N, 1, F, H, W]` for normalised latents."""
    d = np.sqrt(((x0 - x0.mean(axis=(3, 4), keepdims=True)) ** 2).sum(axis=1, keepdims=True))
    return 1 + (weight - 1) * np.clip((d - low) / (high - low), 0, 1)


def swap(caption, table):
    for a, b in table.items():
        new = re.sub(rf"\b{a}\b", b, caption)
        if new != caption:
            return new
    return None


def main():
    if len(sys.argv) < 3:
        sys.exit(__doc__)
    motion_only = "--motion-only" in sys.argv
    first_frame = "--first-frame" in sys.argv
    args = [a for a in sys.argv[1:] if a not in ("--motion-only", "--first-frame")]
    model, cache = args[0], args[1]
    n = int(args[2]) if len(args) > 2 else 48
    def wanted(c):
        if " and " in c or not swap(c, MOTION):
            return False
        return motion_only or ("static camera" in c and c.startswith("flat video") and bool(swap(c, SHAPE) and swap(c, COLOUR)))

    picked = cache_clips(model, cache, wanted, n)
    if not picked:
        sys.exit(f"{cache}: no one-object, static-camera clip with a translation in its caption")
    captions = [e["caption"] for e, _ in picked]
    x0 = np.stack([x for _, x in picked]).astype(np.float32)
    fps = np.array([e["fps"] for e, _ in picked], np.float32)
    sets = {"own caption": captions, "motion swapped": [swap(c, MOTION) for c in captions]}
    if not motion_only:
        sets.update({"shape swapped": [swap(c, SHAPE) for c in captions], "colour swapped": [swap(c, COLOUR) for c in captions]})
    sets["empty caption"] = [""] * len(captions)
    eps = np.random.default_rng(0).standard_normal(x0.shape).astype(np.float32)
    print(f"{len(captions)} clips, e.g. {captions[0]!r}" + (" (first latent frame shown clean)" if first_frame else ""))
    frames = x0.shape[2]
    # Frames the loss is over: all, or all but a clean first frame.
    scored = slice(1, frames) if first_frame else slice(0, frames)
    header = f"{'sigma':>6} " + " ".join(f"{name:>15}" for name in sets)
    w = foreground_weights(x0)
    plain, weighted = [], []
    with tempfile.TemporaryDirectory() as tmp:
        context = {name: encode_text(model, c, tmp, max_len=32)[0] for name, c in sets.items()}
        for sigma in SIGMAS:
            xt, timestep = noised(x0, eps, sigma, first_frame)
            target = eps - x0
            p_row, w_row = [], []
            for name in sets:
                out = run_component(model, "transformer", {"hidden_states": xt, "timestep": timestep,
                                                            "encoder_hidden_states": context[name], "fps": fps}, tmp)["sample"]
                e = ((out - target) ** 2)[:, :, scored]
                ws = w[:, :, scored]
                p_row.append(float(e.mean()))
                w_row.append(float((e * ws).mean() / ws.mean()))
            plain.append((sigma, p_row))
            weighted.append((sigma, w_row))
    for title, rows in (("velocity MSE", plain), ("velocity MSE weighted towards objects (foreground_weight 10)", weighted)):
        print(title)
        print(header)
        for sigma, row in rows:
            print(f"{sigma:6.2f} " + " ".join(f"{v:15.4f}" for v in row))


if __name__ == "__main__":
    main()
