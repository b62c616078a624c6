#!/usr/bin/env python3
"""One latent cache from several made with the same VAE, size and frame count, say by
`reel data cache` runs with different `--seed`s on several machines, or side by side:

    for k in 0 1 2 3; do reel data cache ... --seed $k --out part-$k & done; wait
    python3 tools/cache-merge.py OUT part-0 part-1 part-2 part-3

Entries keep their order (the first cache's, then the second's, ...); each input shard
becomes one shard of OUT with its tensors renumbered. OUT is written beside itself and
renamed into place, so a failed merge leaves nothing behind. Needs numpy and safetensors.
"""
import json
import os
import shutil
import sys

from safetensors.numpy import load_file, save_file

from reel_tools import cache_entry

SAME = ("format", "vae_hash", "text_encoder_hash", "max_text_len", "width", "height", "frames")


def main():
    if len(sys.argv) < 3:
        sys.exit(__doc__)
    out, inputs = sys.argv[1], sys.argv[2:]
    if os.path.exists(out):
        sys.exit(f"{out} exists; pick a new folder")
    indexes = [json.load(open(os.path.join(c, "index.json"))) for c in inputs]
    for c, index in zip(inputs[1:], indexes[1:]):
        for key in SAME:
            if index.get(key) != indexes[0].get(key):
                sys.exit(f"{c}: {key} is {index.get(key)!r} but {inputs[0]} has {indexes[0].get(key)!r}; "
                         "merge only caches made with the same model and clip size")
    tmp = out + ".partial"
    shutil.rmtree(tmp, ignore_errors=True)
    os.makedirs(tmp)
    shards, entries, skipped = [], [], []
    for c, index in zip(inputs, indexes):
        by_shard = {}
        for k, e in enumerate(index["entries"]):
            by_shard.setdefault(e["shard"], []).append((k, e))
        for s, name in enumerate(index["shards"]):
            rows = by_shard.get(s, [])
            if not rows:
                continue
            tensors = load_file(os.path.join(c, name))
            renamed = {}
            for k, e in rows:
                renamed.update(cache_entry(tensors, k, len(entries)))
                entries.append(dict(e, shard=len(shards)))
            shards.append(f"shard-{len(shards):05}.safetensors")
            save_file(renamed, os.path.join(tmp, shards[-1]))
        skipped.extend(index.get("skipped", []))
    json.dump(dict(indexes[0], shards=shards, entries=entries, skipped=skipped), open(os.path.join(tmp, "index.json"), "w"), indent=2)
    os.rename(tmp, out)
    print(f"{out}: {len(entries)} clips in {len(shards)} shards")


if __name__ == "__main__":
    main()
