#!/usr/bin/env python3
"""A VAE's fade: how much of a still object's colour it keeps from the first frames to the last.

Each clip's first frame is repeated into a still clip of the same length, encoded with
`reel model run --component vae-encode` and decoded with `vae-decode` (posterior means). The
object is where the first frame is far from its median colour; its colour mass in a decoded
frame is the soft count of pixels near the object's colour. Printed: the mean mass per frame
relative to frames 0-3, and the last quarter against the first, as the adherence scorer
compares them (a still object whose ln ratio falls below -0.16 reads "shrink"); how far the
still clips' latents of later chunks are from the first chunk's (the same frames, so a VAE
without a memory of earlier chunks would give the same latent). Then where
the loss comes from: the PSNR of each clip's last five frames through the VAE inside the whole
clip, and encoded and decoded as a clip of their own (no history of earlier chunks).

    reel data synth --out real --count 16 --split holdout --scenes scoring --seed 7 --width 128 --height 128
    python3 tools/vae-fade.py real/manifest.jsonl models/shapes-v1

Needs numpy, safetensors (pip) and ffmpeg; clips must share one size and frame count.
"""
import sys
import tempfile

import numpy as np

from reel_tools import psnr_per_frame, read_clip_set, vae_roundtrip

CLIPS = 16


def colour_mass(frame, colour):
    """Soft count of the pixels of `frame` [C, H, W] (in [-1, 1]) near `colour` [C]."""
    d = np.sqrt(((frame - colour[:, None, None]) ** 2).sum(0))
    return np.clip(1 - (d - 0.3) / 0.45, 0, 1).sum()


def main():
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    manifest, model = sys.argv[1:]
    rows, clips = read_clip_set(manifest, CLIPS)
    f = clips.shape[2]
    first = clips[:, :, 0]
    still = np.repeat(first[:, :, None], f, axis=2)
    with tempfile.TemporaryDirectory() as tmp:
        decoded, latents = vae_roundtrip(model, still, tmp)
        whole = vae_roundtrip(model, clips, tmp)[0][:, :, -5:]
        alone = vae_roundtrip(model, clips[:, :, -5:], tmp)[0]
    quarter = max(f // 4, 1)
    profiles, ratios = [], []
    for clip, out in zip(first, decoded):
        bg = np.median(clip.reshape(3, -1), axis=1)
        on = np.sqrt(((clip - bg[:, None, None]) ** 2).sum(0)) > 0.5
        if on.sum() < 4:
            continue
        colour = clip[:, on].mean(1)
        mass = np.array([colour_mass(out[:, t], colour) for t in range(f)])
        profiles.append(mass / mass[:quarter].mean())
        ratios.append(np.log(mass[-quarter:].mean() / mass[:quarter].mean()))
    p = np.mean(profiles, axis=0)
    print(f"{len(profiles)} still objects; colour mass per frame, relative to frames 0-{quarter - 1}:")
    print(" ".join(f"{v:.2f}" for v in p))
    print(f"last quarter / first: {np.exp(np.mean(ratios)):.3f} (mean ln {np.mean(ratios):+.3f}; "
          f"{np.mean(np.array(ratios) < -0.16):.0%} below the scorer's -0.16)")
    if latents.shape[2] > 2:
        drift = [np.sqrt(((latents[:, :, k] - latents[:, :, 1]) ** 2).mean()) for k in range(2, latents.shape[2])]
        print(f"the still clips' latents: rms difference of chunks 2.. from chunk 1 "
              f"{' '.join(f'{d:.2f}' for d in drift)} (the latents' std {latents[:, :, 1:].std():.2f})")
    print(f"the last 5 frames of the {len(rows)} clips, PSNR (dB): inside the clip {psnr_per_frame(whole, clips[:, :, -5:])}; "
          f"as a clip of their own {psnr_per_frame(alone, clips[:, :, -5:])}")


if __name__ == "__main__":
    main()
