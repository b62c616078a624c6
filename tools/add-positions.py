#!/usr/bin/env python3
"""Gives a trained Wan transformer absolute positions, starting as a no-op.

    python3 tools/add-positions.py SRC DST [--init-std S]

Copies the model folder SRC (diffusers layout) to DST with `sincos_positions` on in its
transformer config and `pos_embedding.weight` — the projection of the fixed sin-cos position
features — set to zeros, so DST's transformer computes exactly what SRC's did until
training moves the projection (shapes-v1's step 9, configs/shapes-v1/transformer-3.toml);
or, with `--init-std S`, to normal values of that standard deviation (seeded), so every
token carries its position from the first step. Needs numpy and safetensors (pip).
"""
import json
import os
import shutil
import sys

import numpy as np
from safetensors.numpy import load_file, save_file


def main():
    args = sys.argv[1:]
    std = 0.0
    if len(args) == 4 and args[2] == "--init-std":
        std = float(args[3])
        args = args[:2]
    if len(args) != 2 or not std >= 0:
        sys.exit(__doc__)
    src, dst = args
    if os.path.exists(dst):
        sys.exit(f"{dst} exists: give a new folder")
    path = os.path.join(src, "transformer", "config.json")
    config = json.load(open(path))
    if config.get("sincos_positions"):
        sys.exit(f"{path}: the transformer has positions already")
    dim = config["num_attention_heads"] * config["attention_head_dim"]
    if dim % 6:
        sys.exit(f"{path}: width {dim} is not divisible by 6 (a third per axis, half sines, half cosines)")
    tmp = dst + ".partial"
    shutil.rmtree(tmp, ignore_errors=True)
    shutil.copytree(src, tmp)
    weights = load_file(os.path.join(tmp, "transformer", "diffusion_pytorch_model.safetensors"))
    weights["pos_embedding.weight"] = (np.random.default_rng(0).standard_normal((dim, dim)) * std).astype(np.float32)
    save_file(weights, os.path.join(tmp, "transformer", "diffusion_pytorch_model.safetensors"))
    config["sincos_positions"] = True
    with open(os.path.join(tmp, "transformer", "config.json"), "w") as f:
        json.dump(config, f, indent=2)
    os.rename(tmp, dst)
    print(f"{dst}: {src} with sin-cos positions (projection std {std})")


if __name__ == "__main__":
    main()
