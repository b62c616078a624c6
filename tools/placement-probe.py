#!/usr/bin/env python3
"""Where does a transformer put an object, and does the motion word move it? For real clips
of a latent cache whose object moves left or right quickly, noises them to SIGMA (default
1.0: pure noise, where a sampler's first step settles the layout) and prints the horizontal
centroid, in latent pixels, of each latent frame's energy (squared distance from the frame's
per-channel median: the object) in the clean latents and in the model's x0 prediction
(x_t − σ·v) with the clip's own caption and with left and right swapped.

    python3 tools/placement-probe.py MODEL CACHE [N] [--sigma S] [--first-frame]

`--first-frame`: the first latent frame is shown clean at timestep 0 (a model trained with
`train.first_frame_share`). Summary lines: how far the swapped word moves the predicted
object (mean |own − swapped| over clips and frames), and in how many clips the predicted
path (last frame's centroid less the first's) goes the caption's way with the own caption
and with the swapped one. A model that reads the word goes the caption's way with the own
caption and the other way with the swapped one; a model that goes the same way with both
takes the direction from elsewhere (the noise, or where the first frame puts the object:
Shapes World starts a fast object where its path stays in frame, so a right-mover starts on
the left).

Needs numpy and safetensors (pip).
"""
import re
import sys
import tempfile

import numpy as np

from reel_tools import cache_clips, encode_text, noised, run_component

SWAP = {"moving left": "moving right", "moving right": "moving left"}


def centroids(lat):
    """`[C, F, H, W]` → the horizontal energy centroid of each frame."""
    out = []
    for t in range(lat.shape[1]):
        d = lat[:, t] - np.median(lat[:, t].reshape(lat.shape[0], -1), axis=1)[:, None, None]
        e = (d**2).sum(0).sum(0)
        out.append(float((e * np.arange(lat.shape[3])).sum() / e.sum()))
    return np.array(out)


def main():
    flags = {"--first-frame"}
    argv = sys.argv[1:]
    first_frame = "--first-frame" in argv
    sigma = 1.0
    if "--sigma" in argv:
        i = argv.index("--sigma")
        sigma = float(argv[i + 1])
        del argv[i : i + 2]
    args = [a for a in argv if a not in flags]
    if len(args) < 2:
        sys.exit(__doc__)
    model, cache = args[0], args[1]
    n = int(args[2]) if len(args) > 2 else 16
    wanted = lambda c: any(w in c for w in SWAP) and " and " not in c and ("quickly" in c or "fast" in c)
    picked = [(e["caption"], e["fps"], x) for e, x in cache_clips(model, cache, wanted, n)]
    if not picked:
        sys.exit(f"{cache}: no one-object clip moving left or right quickly")
    swapped_captions = [re.sub(r"moving (left|right)", lambda m: SWAP[m.group(0)], c) for c, _, _ in picked]
    x0 = np.stack([x for _, _, x in picked])
    fps = np.array([f for _, f, _ in picked], np.float32)
    eps = np.random.default_rng(0).standard_normal(x0.shape).astype(np.float32)
    xt, timestep = noised(x0, eps, sigma, first_frame)
    pred = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name, captions in (("own", [c for c, _, _ in picked]), ("swapped", swapped_captions)):
            context = encode_text(model, captions, tmp, max_len=32)[0]
            v = run_component(model, "transformer", {"hidden_states": xt, "timestep": timestep, "encoder_hidden_states": context, "fps": fps}, tmp)["sample"]
            pred[name] = xt - sigma * v
    print(f"{len(picked)} clips at sigma {sigma}" + (", first latent frame clean" if first_frame else "") + "; horizontal centroid per latent frame (latent pixels)")
    moved, own_way, swapped_way = [], 0, 0
    for i, (caption, _, _) in enumerate(picked):
        sign = 1 if "moving right" in caption else -1
        truth, own, swapped = centroids(x0[i]), centroids(pred["own"][i]), centroids(pred["swapped"][i])
        moved.append(np.abs(own - swapped).mean())
        own_way += int(np.sign(own[-1] - own[0]) == sign)
        swapped_way += int(np.sign(swapped[-1] - swapped[0]) == -sign)
        fmt = lambda a: " ".join(f"{v:4.1f}" for v in a)
        print(f"{'R' if sign > 0 else 'L'}  truth {fmt(truth)}   own {fmt(own)}   swapped {fmt(swapped)}")
    print(f"mean |own - swapped|: {np.mean(moved):.3f} latent px")
    print(f"path goes the caption's way: own caption {own_way}/{len(picked)}, swapped caption (its own way) {swapped_way}/{len(picked)}")


if __name__ == "__main__":
    main()
