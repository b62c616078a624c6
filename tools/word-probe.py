#!/usr/bin/env python3
"""Does one word change what a model draws? Renders prompts that differ in one word with the
same seed and prints how far each clip is from the first (mean absolute difference of the
pixels, 0-255), then writes a contact sheet: one row per prompt, frames 0, 4, 8, 12, 16.
It also prints how far the text encoder's output for each prompt is from the first's: the
largest distance over token positions, relative to the first's norm there (prompts that
swap one word for one word line up token by token; a longer prompt is compared over the
shorter length). A word the encoder barely separates from another cannot steer the clip.

    python3 tools/word-probe.py MODEL OUT.png [--seed S] PROMPT PROMPT...

    python3 tools/word-probe.py models/shapes-v1 probe.png \\
        "flat video of a red circle moving left quickly on a black background" \\
        "flat video of a red circle moving right quickly on a black background"

A word the model ignores gives a distance near 0 (the same clip); a colour word gives tens.
Needs numpy (pip) and ffmpeg.
"""
import os
import subprocess
import sys
import tempfile

import numpy as np

from reel_tools import REEL, encode_text, read_clip

def text_distances(model, prompts, tmp):
    """Per prompt: max over token positions of |h - h0| / |h0| for the text encoder's output."""
    h, lengths = encode_text(model, prompts, tmp)
    out = []
    for k, length in enumerate(lengths):
        n = min(length, lengths[0])
        out.append(float((np.linalg.norm(h[k, :n] - h[0, :n], axis=-1) / np.linalg.norm(h[0, :n], axis=-1)).max()))
    return out


def main():
    args = sys.argv[1:]
    seed = "0"
    if "--seed" in args:
        i = args.index("--seed")
        seed = args[i + 1]
        del args[i : i + 2]
    if len(args) < 3:
        sys.exit(__doc__)
    model, out, prompts = args[0], args[1], args[2:]
    clips = []
    with tempfile.TemporaryDirectory() as tmp:
        for k, prompt in enumerate(prompts):
            path = os.path.join(tmp, f"{k}.mp4")
            subprocess.run([REEL, "-q", "generate", prompt, "--model", model, "--seed", seed, "-o", path],
                           check=True, stdout=subprocess.DEVNULL)
            clips.append(read_clip(path).astype(np.float32))
        text = text_distances(model, prompts, tmp)
        print(" pixels  text  prompt")
        for prompt, clip, t in zip(prompts, clips, text):
            print(f"{np.abs(clip - clips[0]).mean():7.2f}  {t:4.2f}  {prompt}")
        rows = [np.concatenate(list(clip[::4][:5]), axis=1) for clip in clips]
        sheet = np.concatenate(rows, axis=0).astype(np.uint8)
        h, w = sheet.shape[:2]
        subprocess.run(["ffmpeg", "-v", "error", "-y", "-f", "rawvideo", "-pix_fmt", "rgb24", "-s", f"{w}x{h}",
                        "-i", "-", out], input=sheet.tobytes(), check=True)
    print(out)


if __name__ == "__main__":
    main()
