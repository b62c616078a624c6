"""Wan VAE gradient fixture for crates/reel-models/tests/wan_vae_grad_parity.rs.

A tiny random AutoencoderKLWan with Wan's shape (8x spatial, 4x temporal compression, the
mid-block attention) reconstructs a 5-frame clip through its posterior mean; the loss is
the L1 reconstruction error the trainer uses, and the fixture holds the gradient of every
parameter. The weights are scaled so that no output reaches diffusers' clamp to [-1, 1]
(Reel trains on the unclamped decoder output; the two agree only when the clamp is idle).

Run: /opt/reel-ref/bin/python tools/reference/wan_vae_grad.py
"""

import pathlib

import torch
from diffusers import AutoencoderKLWan
from safetensors.torch import save_file

from wan_vae import randomize

OUT = pathlib.Path(__file__).resolve().parents[2] / "crates/reel-models/tests/fixtures/wan_vae_grad"


def main():
    gen = torch.Generator().manual_seed(20261122)
    model = AutoencoderKLWan(base_dim=4, z_dim=4, dim_mult=[1, 2, 2, 2], num_res_blocks=1, attn_scales=[],
                             temperal_downsample=[False, True, True], latents_mean=[0.0] * 4, latents_std=[1.0] * 4)
    randomize(model, gen)
    with torch.no_grad():
        # A small output layer keeps the decoder's output inside the clamp.
        model.decoder.conv_out.weight.mul_(0.05)
        model.decoder.conv_out.bias.mul_(0.05)
    model.train()
    video = torch.rand((2, 3, 5, 16, 16), generator=gen) * 1.6 - 0.8
    mean = model.encode(video).latent_dist.mean
    decoded = model.decode(mean).sample
    assert decoded.abs().max() < 0.999, f"the clamp would act: max |out| {decoded.abs().max():.3f}"
    loss = (decoded - video).abs().mean()
    loss.backward()
    model.save_pretrained(OUT / "vae")
    tensors = {"sample": video, "loss": loss.detach().reshape(1)}
    for name, p in model.named_parameters():
        tensors["grad." + name] = p.grad.detach().clone()
    save_file({k: v.contiguous() for k, v in tensors.items()}, str(OUT / "grads.safetensors"))
    print(f"loss {loss.item():.6f}; {len(tensors) - 2} gradients; max |decoded| {decoded.abs().max():.3f}")


if __name__ == "__main__":
    main()
