#!/usr/bin/env python3
"""Does a transformer follow a layout it is given? An oracle experiment for a layout-then-video
pipeline (LLM-grounded video diffusion's recipe: a planner draws where each object is in every
frame, the video model draws the rest).

    python3 tools/layout-probe.py MODEL OUT [--sigma S] [--layout disc|mask|mean] [--n N]
    reel eval adherence --manifest OUT/LAYOUT-S/manifest.jsonl

For the N held-out scoring-case prompts of the evaluation (`reel data synth --split holdout
--scenes scoring --seed 1`, as tools/eval-shapes-v1.sh renders them), a layout clip is painted
in pixels — the theme's background colour, the object's colour inside the layout — encoded
with MODEL's VAE, noised to σ S (default 0.8) and denoised from there with MODEL's transformer
(its 20-step Euler schedule from the first σ at or below S, guidance 4, the empty prompt as the
negative, one pass; seeds fixed). The layout is the oracle planner's: it comes from a
train-split clip (1 200 rendered into OUT/train) whose object has the prompt's motion, speed
and size labels, drawn at random (seeded) —
  disc   each frame's object as a disc of the same centroid and area (where and how big, not
         which shape: what a planner would give),
  mask   the clip's own object mask (its shape too, drawn from any shape),
  mean   the mean mask over every such clip (a smear: where objects of that motion tend to be).
Colours are the mean object and background pixels of the train clips with that colour word
and theme. `--sigma 0` decodes the painted layout itself (the VAE's ceiling for it). The
train clips (and what is measured from them) and the prompts are made once, into OUT/train
and OUT/prompts, and shared by runs.

Needs numpy, safetensors (pip) and ffmpeg.
"""
import json
import os
import subprocess
import sys
import tempfile

import numpy as np

from reel_tools import REEL, encode_text, noised, read_clip, run_component, write_clips

STEPS, GUIDANCE, SHIFT = 20, 4.0, 3.0


def object_masks(frames):
    """`[T, H, W, 3]` → the pixels far (over 60 in RGB) from each frame's border median, and that median."""
    f = frames.astype(np.float32)
    border = np.concatenate([f[:, 0], f[:, -1], f[:, :, 0], f[:, :, -1]], 1)
    bg = np.median(border, 1)
    return np.linalg.norm(f - bg[:, None, None], axis=-1) > 60, bg


def disc(mask):
    """Each frame of a `[T, H, W]` mask as an anti-aliased disc of its centroid and area."""
    yy, xx = np.mgrid[0 : mask.shape[1], 0 : mask.shape[2]] + 0.5
    out = []
    for m in mask.astype(np.float32):
        a = max(m.sum(), 1.0)
        cy, cx = (m * yy).sum() / a, (m * xx).sum() / a
        out.append(np.clip(np.sqrt(a / np.pi) + 0.5 - np.hypot(yy - cy, xx - cx), 0, 1))
    return np.stack(out)


def synth(out, split, count, seed):
    if not os.path.exists(os.path.join(out, "manifest.jsonl")):
        subprocess.run([REEL, "-q", "data", "synth", "--out", out, "--count", str(count), "--split", split, "--scenes", "scoring",
                        "--seed", str(seed), "--format", "mp4"], check=True, stdout=subprocess.DEVNULL)
    return [json.loads(line) for line in open(os.path.join(out, "manifest.jsonl"))]


def planner_material(folder):
    """The train clips' object masks `[N, T, H, W]`, their (motion, speed, size) labels, and
    the mean object colour per colour word and background per theme; measured once from
    1 200 clips rendered into `folder` and kept there (`material.npz`)."""
    saved = os.path.join(folder, "material.npz")
    if not os.path.exists(saved):
        masks, keys, colours, themes = [], [], {}, {}
        for r in synth(folder, "train", 1200, 11):
            o = r["labels"]["objects"][0]
            frames = read_clip(os.path.join(folder, r["file"]))
            m, bg = object_masks(frames)
            masks.append(m)
            keys.append(json.dumps([o["motion"], o.get("speed"), o["size"]]))
            colours.setdefault(o["color"], []).append(frames[m].astype(np.float32).mean(0))
            themes.setdefault(r["labels"]["theme"], []).append(bg.mean(0))
        np.savez_compressed(saved, masks=np.stack(masks), keys=np.array(keys),
                            colour_names=np.array(list(colours)), colours=np.stack([np.mean(v, 0) for v in colours.values()]),
                            theme_names=np.array(list(themes)), themes=np.stack([np.mean(v, 0) for v in themes.values()]))
    z = np.load(saved)
    keys = [tuple(json.loads(k)) for k in z["keys"]]
    return z["masks"], keys, dict(zip(z["colour_names"], z["colours"])), dict(zip(z["theme_names"], z["themes"]))


def main():
    argv = sys.argv[1:]
    opts = {"--sigma": "0.8", "--layout": "disc", "--n": "64"}
    for k in opts:
        if k in argv:
            i = argv.index(k)
            opts[k] = argv[i + 1]
            del argv[i : i + 2]
    if len(argv) != 2 or opts["--layout"] not in ("disc", "mask", "mean"):
        sys.exit(__doc__)
    model, out = argv
    sigma0, layout, n = float(opts["--sigma"]), opts["--layout"], int(opts["--n"])
    os.makedirs(out, exist_ok=True)

    # The oracle planner's material: train clips' object masks by (motion, speed, size), and colours.
    masks, keys, colours, themes = planner_material(os.path.join(out, "train"))
    prompts = synth(os.path.join(out, "prompts"), "holdout", n, 1)[:n]
    rng = np.random.default_rng(0)
    painted = []
    for r in prompts:
        o = r["labels"]["objects"][0]
        same = [i for i, k in enumerate(keys) if k == (o["motion"], o.get("speed"), o["size"])]
        if layout == "mean":
            occ = np.mean([masks[i] for i in same], 0)
        else:
            occ = masks[same[rng.integers(len(same))]].astype(np.float32)
            if layout == "disc":
                occ = disc(occ)
        occ = occ[..., None]
        painted.append(themes[r["labels"]["theme"]] * (1 - occ) + colours[o["color"]] * occ)
    x = np.ascontiguousarray((np.stack(painted) / 127.5 - 1).transpose(0, 4, 1, 2, 3).astype(np.float32))

    vae = json.load(open(os.path.join(model, "vae", "config.json")))
    mean = np.array(vae["latents_mean"], np.float32).reshape(1, -1, 1, 1, 1)
    std = np.array(vae["latents_std"], np.float32).reshape(1, -1, 1, 1, 1)
    shifted = lambda s: SHIFT * s / (1 + (SHIFT - 1) * s)
    sigmas = np.append(shifted(np.linspace(1.0, shifted(1 / 1000), STEPS)), 0.0)
    first = int(np.argmax(sigmas <= sigma0 + 1e-6))
    with tempfile.TemporaryDirectory() as tmp:
        lat = np.ascontiguousarray((run_component(model, "vae-encode", {"sample": x}, tmp)["mean"] - mean) / std, dtype=np.float32)
        noise = np.random.default_rng(0).standard_normal(lat.shape).astype(np.float32)
        xt = noised(lat, noise, float(sigmas[first]), False)[0]
        captions = [r["caption"] for r in prompts]
        context = np.concatenate([encode_text(model, captions, tmp, 32)[0], encode_text(model, [""] * n, tmp, 32)[0]])
        fps = np.full(2 * n, 8.0, np.float32)
        for i in range(first, STEPS):
            v = run_component(model, "transformer", {"hidden_states": np.ascontiguousarray(np.concatenate([xt, xt])),
                                                      "timestep": np.full(2 * n, sigmas[i] * 1000, np.float32),
                                                      "encoder_hidden_states": context, "fps": fps}, tmp)["sample"]
            xt = (xt + (sigmas[i + 1] - sigmas[i]) * (v[n:] + GUIDANCE * (v[:n] - v[n:]))).astype(np.float32)
        video = run_component(model, "vae-decode", {"latents": np.ascontiguousarray(xt * std + mean, dtype=np.float32)}, tmp)["sample"]
    manifest = write_clips(os.path.join(out, f"{layout}-{opts['--sigma']}"), prompts, video)
    print(f"{n} clips from {layout} layouts at sigma {sigmas[first]:.3f}: {manifest}")


if __name__ == "__main__":
    main()
