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
import sys
import tempfile

from reel_tools import psnr_per_frame, read_clip_set, vae_roundtrip, write_clips


def main():
    if len(sys.argv) != 4:
        sys.exit(__doc__)
    manifest, model, out = sys.argv[1:]
    rows, x = read_clip_set(manifest)
    with tempfile.TemporaryDirectory() as tmp:
        y = vae_roundtrip(model, x, tmp)[0]
    print("PSNR per frame (dB):", psnr_per_frame(y, x))
    print(write_clips(out, rows, y))


if __name__ == "__main__":
    main()
