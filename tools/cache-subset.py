#!/usr/bin/env python3
"""A smaller latent cache: the first N entries of CACHE whose caption matches a regular
expression, written to OUT in the same format (one shard), for quick experiments such as
checking that a model can learn a word at all on a few hundred clips.

    python3 tools/cache-subset.py CACHE OUT REGEX N [--caption-group G]

With `--caption-group G` each caption becomes the text of the regex's group G (say, only
its motion phrase: does a model learn a word when nothing else is said?).

Needs numpy and safetensors (pip).
"""
import json
import os
import re
import sys

from safetensors.numpy import load_file, save_file

from reel_tools import cache_entry


def main():
    args = sys.argv[1:]
    group = None
    if len(args) == 6 and args[4] == "--caption-group":
        group = int(args[5])
        args = args[:4]
    if len(args) != 4:
        sys.exit(__doc__)
    cache, out, pattern, n = args[0], args[1], re.compile(args[2]), int(args[3])
    if os.path.exists(out):
        sys.exit(f"{out} exists; pick a new folder")
    index = json.load(open(os.path.join(cache, "index.json")))
    shards, tensors, entries = {}, {}, []
    for k, e in enumerate(index["entries"]):
        match = pattern.search(e["caption"])
        if not match:
            continue
        if e["shard"] not in shards:
            shards[e["shard"]] = load_file(os.path.join(cache, index["shards"][e["shard"]]))
        tensors.update(cache_entry(shards[e["shard"]], k, len(entries)))
        entries.append(dict(e, shard=0, caption=match.group(group) if group is not None else e["caption"]))
        if len(entries) == n:
            break
    if not entries:
        sys.exit(f"no caption in {cache} matches {pattern.pattern!r}")
    tmp = out + ".partial"
    os.makedirs(tmp)
    save_file(tensors, os.path.join(tmp, "shard-00000.safetensors"))
    json.dump(dict(index, shards=["shard-00000.safetensors"], entries=entries, skipped=[]), open(os.path.join(tmp, "index.json"), "w"), indent=2)
    os.rename(tmp, out)
    print(f"{out}: {len(entries)} clips")


if __name__ == "__main__":
    main()
