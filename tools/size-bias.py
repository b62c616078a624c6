#!/usr/bin/env python3
"""How much generated objects that should keep their size shrink or grow over a clip, as the
adherence scorer reads them: the statistic `layout_erosion` is chosen by (MODEL_CARD.md,
"Layout erosion").

For each adherence run (`reel eval adherence --model … --out RUN`), over its one-object clips
whose object is still or translating: the scorer's log area ratio, last quarter against
first (`score.reading.objects[0].area_ratio` in RUN/evaluation.json) — mean, median, and the
share below -0.16, where the scorer reads "shrink"; the same per size word with the width of
radius that ratio amounts to (the spec's radius for the size: 0.08 / 0.12 / 0.17 of the
canvas width); and the still objects alone, with how many of them read "shrink".

    python3 tools/size-bias.py [--first N] RUN [RUN ...]     # --first N: only each run's first N clips

Needs numpy and ffmpeg (the canvas width is read from the first clip).
"""
import json
import math
import os
import sys

import numpy as np

from reel_tools import read_clip

SHRINK = -0.16
RADIUS = {"small": 0.08, "medium": 0.12, "large": 0.17}  # ../shared/specs/shapes-world.md


def main():
    args = sys.argv[1:]
    first = None
    if args[:1] == ["--first"]:
        if len(args) < 3:
            sys.exit(__doc__)
        first, args = int(args[1]), args[2:]
    if not args:
        sys.exit(__doc__)
    for run in args:
        clips = json.load(open(os.path.join(run, "evaluation.json")))["clips"][:first]
        width = read_clip(os.path.join(run, clips[0]["file"])).shape[2]
        logs, by_size, still, still_shrink = [], {}, [], 0
        for clip in clips:
            labels, read = clip["labels"]["objects"], clip["score"]["reading"].get("objects", [])
            if len(labels) != 1 or not read or labels[0]["motion"] in ("grow", "shrink"):
                continue
            r = math.log(max(read[0]["area_ratio"], 1e-6))
            logs.append(r)
            by_size.setdefault(labels[0]["size"], []).append(r)
            if labels[0]["motion"] == "still":
                still.append(r)
                still_shrink += read[0]["motion"] == "shrink"
        logs = np.array(logs)
        print(f"{run} ({len(clips)} clips): {len(logs)} constant-size objects, ln area ratio mean {logs.mean():+.3f}, "
              f"median {np.median(logs):+.3f}, {100 * np.mean(logs < SHRINK):.0f}% below {SHRINK}")
        for size in ("small", "medium", "large"):
            if size in by_size:
                v = np.array(by_size[size])
                worn = RADIUS[size] * width * (1 - math.exp(v.mean() / 2))
                print(f"  {size:6} {len(v):3}: mean {v.mean():+.3f}, median {np.median(v):+.3f}, {worn:.1f} px of radius")
        if still:
            print(f"  still  {len(still):3}: mean {np.mean(still):+.3f}, {still_shrink} read \"shrink\"")


if __name__ == "__main__":
    main()
