#!/usr/bin/env python3
"""How much of a latent cache's variance does each kind of caption word explain? For
one-object, static-camera clips of a cache, groups the normalised latents by the caption's
colour, shape or motion word and prints the between-group variance (the mean square of
each group's mean latent minus the overall mean latent, weighted by group size) next to
the same with the words shuffled among the clips (what finite groups give by chance). The
difference is what a model that reads that word could at most take off its loss at the
highest noise (the x0 part of the velocity target); swapping the word for a wrong one costs
about twice that.

    python3 tools/word-variance.py MODEL CACHE [N]

MODEL: a model folder whose VAE config has the latent statistics; N clips (default 600).
Needs numpy and safetensors (pip).
"""
import json
import os
import re
import sys

import numpy as np
from safetensors.numpy import load_file

WORDS = {
    "colour": ["red", "green", "blue", "yellow", "purple", "orange", "cyan", "white"],
    "shape": ["circle|ball|disc|sphere", "square|box|block", "triangle"],
    "motion": ["left", "right", r"moving up|rising", r"moving down|sinking|falling", "growing|getting bigger|expanding",
               "shrinking|getting smaller", "not moving|still|motionless|stationary"],
}
BUSY = (" and ", "pans", "zooms", "pixel", "outline", "line-art", "tilts")


def label(caption, kind):
    for i, pattern in enumerate(WORDS[kind]):
        if re.search(rf"\b({pattern})\b", caption):
            return i
    return None


def between(x, labels):
    overall = x.mean(0)
    total = 0.0
    for g in set(labels):
        members = x[[i for i, l in enumerate(labels) if l == g]]
        total += len(members) * float(((members.mean(0) - overall) ** 2).mean())
    return total / len(x)


def main():
    if len(sys.argv) < 3:
        sys.exit(__doc__)
    model, cache = sys.argv[1], sys.argv[2]
    n = int(sys.argv[3]) if len(sys.argv) > 3 else 600
    index = json.load(open(os.path.join(cache, "index.json")))
    vae = json.load(open(os.path.join(model, "vae", "config.json")))
    mean = np.array(vae["latents_mean"], np.float32).reshape(-1, 1, 1, 1)
    std = np.array(vae["latents_std"], np.float32).reshape(-1, 1, 1, 1)
    latents, captions, shards = [], [], {}
    for k, e in enumerate(index["entries"]):
        c = e["caption"]
        if any(b in c for b in BUSY) or any(label(c, kind) is None for kind in WORDS):
            continue
        if e["shard"] not in shards:
            shards[e["shard"]] = load_file(os.path.join(cache, index["shards"][e["shard"]]))
        latents.append((shards[e["shard"]][f"mean.{k}"] - mean) / std)
        captions.append(c)
        if len(captions) == n:
            break
    if not captions:
        sys.exit(f"{cache}: no one-object, static-camera clip with a colour, shape and motion word")
    x = np.stack(latents)
    total = float(((x - x.mean(0)) ** 2).mean())
    print(f"{len(x)} clips; variance of the normalised latents {total:.4f}")
    rng = np.random.default_rng(0)
    for kind in WORDS:
        labels = [label(c, kind) for c in captions]
        real = between(x, labels)
        chance = np.mean([between(x, list(rng.permutation(labels))) for _ in range(5)])
        print(f"{kind:7} between-group {real:.4f}  shuffled {chance:.4f}  explained {real - chance:.4f} "
              f"({100 * (real - chance) / total:.1f}% of the variance)")


if __name__ == "__main__":
    main()
