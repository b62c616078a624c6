#!/usr/bin/env python3
"""A VAE's reconstruction of a clip set: what any model decoding through it can reach at best.

Encodes every clip of a manifest (`reel data synth`'s format) with `reel model run
--component vae-encode`, decodes the posterior means with `vae-decode`, writes the
reconstructions as MP4 beside a copy of the manifest, and prints the PSNR per frame. Score the
result like any clip set:

    reel data synth --out real --count 64 --split holdout --scenes scoring --seed 7
    python3 tools/vae-roundtrip.py real/manifest.jsonl models/shapes-v1 roundtrip
    reel eval adherence --manifest roundtrip/manifest.jsonl

Needs numpy, safetensors (pip) and ffmpeg; clips must share one size and frame count.
"""
import json
import os
import sys
import tempfile

import numpy as np

from reel_tools import read_clip, run_component, write_clips

BATCH = 16


def main():
    if len(sys.argv) != 4:
        sys.exit(__doc__)
    manifest, model, out = sys.argv[1:]
    base = os.path.dirname(os.path.abspath(manifest))
    rows = [json.loads(line) for line in open(manifest) if line.strip()]
    w, h, f = rows[0]["width"], rows[0]["height"], rows[0]["frames"]
    clips = np.stack([read_clip(os.path.join(base, r["file"]))[:f] for r in rows])  # N T H W C
    x = np.ascontiguousarray((clips.astype(np.float32) / 127.5 - 1).transpose(0, 4, 1, 2, 3))  # N C T H W
    decoded = []
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(0, len(x), BATCH):
            mean = run_component(model, "vae-encode", {"sample": np.ascontiguousarray(x[i:i + BATCH])}, tmp)["mean"]
            decoded.append(run_component(model, "vae-decode", {"latents": mean}, tmp)["sample"])
    y = np.clip(np.concatenate(decoded), -1, 1)
    mse = ((y - x) ** 2).mean(axis=(0, 1, 3, 4))
    print("PSNR per frame (dB):", " ".join(f"{10 * np.log10(4 / m):.1f}" for m in mse))
    print(write_clips(out, rows, y))


if __name__ == "__main__":
    main()
