#!/usr/bin/env python3
"""Which shape the scorer reads in single frames of generated clips: where over a clip the
shapes are lost.

Each clip of an adherence run (`reel eval adherence --model … --out RUN`) is cut into still
clips, one per chosen frame (that frame repeated), labelled as the clip was with every object
still; `reel eval adherence --manifest` scores them, and the share of objects whose shape
reads right is printed per frame, over all shapes and per shape, with the confusions.

    reel eval adherence --model shapes-v1 --split holdout --scenes scoring --samples 64 --seed 0 --out RUN
    python3 tools/shape-per-frame.py RUN OUT [FRAMES]      # FRAMES: e.g. 0,4,8,12,16 (the default)

Needs numpy and safetensors (pip), ffmpeg, and a built `reel` (target/release/reel, or $REEL).
"""
import collections
import json
import os
import subprocess
import sys

import numpy as np

from reel_tools import REEL, read_clip, write_clips


def main():
    if len(sys.argv) not in (3, 4):
        sys.exit(__doc__)
    run, out = sys.argv[1:3]
    frames = [int(k) for k in (sys.argv[3] if len(sys.argv) == 4 else "0,4,8,12,16").split(",")]
    rows, stills = [], []
    for line in open(os.path.join(run, "manifest.jsonl")):
        if not line.strip():
            continue
        row = json.loads(line)
        clip = read_clip(os.path.join(run, row["file"]))
        for k in frames:
            if k >= len(clip):
                sys.exit(f"{row['file']} has {len(clip)} frames; frame {k} asked for")
            still = json.loads(json.dumps(row))
            for o in still["labels"]["objects"]:
                o["motion"] = "still"
            still.update(file=row["file"].replace(".mp4", f"_f{k:02d}.mp4"), frame=k, fps=row.get("fps", 8), frames=len(clip))
            rows.append(still)
            stills.append(np.repeat(clip[k][None], len(clip), 0))
    x = np.stack(stills).astype(np.float32).transpose(0, 4, 1, 2, 3) / 127.5 - 1
    manifest = write_clips(os.path.join(out, "clips"), rows, x)
    subprocess.run([REEL, "-q", "eval", "adherence", "--manifest", manifest, "--out", os.path.join(out, "eval"), "--json"],
                   check=True, stdout=subprocess.DEVNULL)
    scored = {c["file"]: c for c in json.load(open(os.path.join(out, "eval", "evaluation.json")))["clips"]}
    right, confusions = collections.defaultdict(list), collections.Counter()
    for row in rows:
        clip = scored[os.path.basename(row["file"])]
        for check in clip["score"]["checks"]:
            if check["attribute"] != "shape":
                continue
            ok = check["expected"] == check["read"]
            right[(None, row["frame"])].append(ok)
            right[(check["expected"], row["frame"])].append(ok)
            if not ok:
                confusions[(check["expected"], check["read"], row["frame"])] += 1
    print("frame      " + " ".join(f"{k:>6}" for k in frames))
    for shape in (None, "circle", "square", "triangle"):
        cells = [right[(shape, k)] for k in frames]
        if cells[0]:
            print(f"{shape or 'all':10} " + " ".join(f"{100 * np.mean(c):5.1f}%" for c in cells) + f"  ({len(cells[0])} objects)")
    print("misread (expected → read @ frame: count):",
          ", ".join(f"{e} → {r} @ {k}: {n}" for (e, r, k), n in sorted(confusions.items(), key=lambda c: (c[0][0], c[0][2]))))


if __name__ == "__main__":
    main()
