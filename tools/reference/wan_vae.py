"""Wan VAE parity fixtures: tiny random-weight AutoencoderKLWan configs in diffusers.

For each config: the model in the diffusers layout (`<name>/vae/`) and
`<name>.io.safetensors` with `sample` (video in [-1, 1]) → `mean`, `logvar`
(encode), and `latents` → `decoded` (decode of random latents). With
`tiling`, also the tiled encode/decode outputs (`tiled_mean`, `tiled_decoded`).

Run: /opt/reel-ref/bin/python tools/reference/wan_vae.py [OUT_DIR]
"""

import pathlib
import sys

import torch
from diffusers import AutoencoderKLWan
from safetensors.torch import save_file

DEFAULT_OUT = pathlib.Path(__file__).resolve().parents[2] / "crates/reel-models/tests/fixtures/wan_vae"

CONFIGS = {
    # Two down stages (4x spatial), one temporal (2x); no attention in the down path.
    "tiny_a": dict(
        config=dict(base_dim=8, z_dim=4, dim_mult=[1, 2, 2], num_res_blocks=1, attn_scales=[],
                    temperal_downsample=[False, True], latents_mean=[0.1, -0.2, 0.3, 0.0],
                    latents_std=[1.5, 0.5, 2.0, 1.0]),
        video=(1, 3, 9, 12, 16), latent=(1, 4, 4, 3, 4)),
    # Wan's shape (8x spatial, 4x temporal), two batches, tiling.
    "tiny_b": dict(
        config=dict(base_dim=4, z_dim=3, dim_mult=[1, 2, 2, 2], num_res_blocks=1, attn_scales=[],
                    temperal_downsample=[False, True, True], latents_mean=[0.0, 0.0, 0.0],
                    latents_std=[1.0, 1.0, 1.0]),
        video=(2, 3, 9, 16, 24), latent=(1, 3, 3, 2, 3),
        tiling=dict(tile=16, stride=8, video=(1, 3, 5, 32, 24), latent=(1, 3, 2, 4, 5))),
}


def randomize(model, gen):
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("gamma"):
                p.copy_(1.0 + 0.2 * torch.randn(p.shape, generator=gen))
            else:
                p.copy_(0.3 * torch.randn(p.shape, generator=gen) / max(1, p[0].numel()) ** 0.25)


def build(name, spec, out_dir, seed):
    gen = torch.Generator().manual_seed(seed)
    model = AutoencoderKLWan(**spec["config"]).eval()
    randomize(model, gen)
    model.save_pretrained(out_dir / name / "vae")
    video = torch.rand(spec["video"], generator=gen) * 2 - 1
    latents = torch.randn(spec["latent"], generator=gen)
    out = {"sample": video, "latents": latents}
    with torch.no_grad():
        dist = model.encode(video).latent_dist
        out["mean"], out["logvar"] = dist.mean, dist.logvar
        out["decoded"] = model.decode(latents).sample
        if "tiling" in spec:
            t = spec["tiling"]
            tv = torch.rand(t["video"], generator=gen) * 2 - 1
            tl = torch.randn(t["latent"], generator=gen)
            model.enable_tiling(tile_sample_min_height=t["tile"], tile_sample_min_width=t["tile"],
                                tile_sample_stride_height=t["stride"], tile_sample_stride_width=t["stride"])
            out["tiled_sample"], out["tiled_latents"] = tv, tl
            out["tiled_mean"] = model.encode(tv).latent_dist.mean
            out["tiled_decoded"] = model.decode(tl).sample
    save_file({k: v.contiguous() for k, v in out.items()}, out_dir / f"{name}.io.safetensors")
    return out


def main():
    out_dir = pathlib.Path(sys.argv[1]) if len(sys.argv) > 1 else DEFAULT_OUT
    out_dir.mkdir(parents=True, exist_ok=True)
    for i, (name, spec) in enumerate(CONFIGS.items()):
        out = build(name, spec, out_dir, seed=200 + i)
        print(name, {k: tuple(v.shape) for k, v in out.items()})


if __name__ == "__main__":
    main()
