#!/usr/bin/env python3
"""Does a latent cache carry object motion? For single-object, static-camera, flat clips whose
caption says the object moves left or right fast, prints the horizontal centroid (in latent
pixels) of each latent frame's energy — the squared distance of every latent pixel from the
frame's per-channel median (the background) — so a moving object shows as a moving centroid.

    python3 tools/latent-motion.py runs/shapes-v1-cache-mix [N]

Needs numpy and safetensors (pip).
"""
import json
import os
import re
import sys

import numpy as np
from safetensors.numpy import load_file

cache, wanted = sys.argv[1], int(sys.argv[2]) if len(sys.argv) > 2 else 8
index = json.load(open(os.path.join(cache, "index.json")))
busy = (" and ", "pans", "zooms", "pixel", "outlined", "line-art")
shards, found = {}, 0
for i, entry in enumerate(index["entries"]):
    c = entry["caption"]
    if not (re.search(r"\b(left|right)\b", c) and re.search(r"\b(fast|quickly)\b", c)) or any(w in c for w in busy):
        continue
    s = entry["shard"]
    if s not in shards:
        shards[s] = load_file(os.path.join(cache, index["shards"][s]))
    mean = shards[s][f"mean.{i}"]  # [z, T, h, w]
    z, frames, _, w = mean.shape
    centroids = []
    for t in range(frames):
        d = mean[:, t] - np.median(mean[:, t].reshape(z, -1), axis=1)[:, None, None]
        energy = (d**2).sum(0).sum(0)  # per column
        centroids.append(float((energy * np.arange(w)).sum() / energy.sum()))
    print(f"{c[:72]:72}  " + " ".join(f"{x:5.2f}" for x in centroids))
    found += 1
    if found >= wanted:
        break
