"""Wan transformer parity fixtures: tiny random-weight WanTransformer3DModel configs in diffusers.

For each config: the model saved in the diffusers layout (`<name>/transformer/`),
and `<name>.io.safetensors` with inputs (`hidden_states`, `timestep`,
`encoder_hidden_states`) and the output (`sample`).

Run: /opt/reel-ref/bin/python tools/reference/wan_transformer.py [OUT_DIR] [--configs a,b]
Every parameter is drawn at random (norm scales around 1), so that a swapped or
missing weight shows in the output.
"""

import json
import pathlib
import sys

import torch
from diffusers import WanTransformer3DModel
from safetensors.torch import save_file

DEFAULT_OUT = pathlib.Path(__file__).resolve().parents[2] / "crates/reel-models/tests/fixtures/wan_transformer"

CONFIGS = {
    # Odd head count, non-square latent frames, several latent frames, cross-attention norm.
    "tiny_a": dict(
        config=dict(patch_size=(1, 2, 2), num_attention_heads=3, attention_head_dim=12, in_channels=4, out_channels=4,
                    text_dim=20, freq_dim=16, ffn_dim=40, num_layers=2, cross_attn_norm=True, eps=1e-6,
                    rope_max_seq_len=64),
        latent=(2, 4, 3, 4, 6), text_len=7, timesteps=[999.0, 321.0]),
    # No cross-attention norm, more input than output channels (conditioning), time patch 2.
    "tiny_b": dict(
        config=dict(patch_size=(2, 2, 2), num_attention_heads=2, attention_head_dim=16, in_channels=6, out_channels=3,
                    text_dim=12, freq_dim=10, ffn_dim=24, num_layers=2, cross_attn_norm=False, eps=1e-5,
                    rope_max_seq_len=64),
        latent=(1, 6, 4, 6, 4), text_len=5, timesteps=[500.0]),
    # One timestep per latent frame (a clean first frame at 0, as first-frame conditioning
    # runs it): diffusers takes them per token (Wan2.2 TI2V's [B, S]); the fixture stores
    # them per latent frame ([B, F']), Reel's form, and feeds diffusers each frame's value
    # for every token of the frame.
    "tiny_c": dict(
        config=dict(patch_size=(1, 2, 2), num_attention_heads=2, attention_head_dim=12, in_channels=4, out_channels=4,
                    text_dim=8, freq_dim=8, ffn_dim=16, num_layers=2, cross_attn_norm=True, eps=1e-6,
                    rope_max_seq_len=64),
        latent=(2, 4, 3, 4, 4), text_len=5, frame_timesteps=[[0.0, 900.0, 900.0], [300.0, 300.0, 300.0]]),
}


def randomize(model, gen):
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith(("norm_q.weight", "norm_k.weight", "norm2.weight")):
                p.copy_(1.0 + 0.2 * torch.randn(p.shape, generator=gen))
            else:
                p.copy_(0.2 * torch.randn(p.shape, generator=gen))


def build(name, spec, out_dir, seed):
    gen = torch.Generator().manual_seed(seed)
    model = WanTransformer3DModel(**spec["config"]).eval()
    randomize(model, gen)
    model.save_pretrained(out_dir / name / "transformer")
    hidden = torch.randn(spec["latent"], generator=gen)
    b = spec["latent"][0]
    text = torch.randn((b, spec["text_len"], spec["config"]["text_dim"]), generator=gen)
    if "frame_timesteps" in spec:
        timestep = torch.tensor(spec["frame_timesteps"], dtype=torch.float32)
        pt, ph, pw = spec["config"]["patch_size"]
        tokens_per_frame = (spec["latent"][3] // ph) * (spec["latent"][4] // pw)
        per_token = timestep.repeat_interleave(tokens_per_frame, dim=1)
    else:
        timestep = torch.tensor(spec["timesteps"], dtype=torch.float32)
        per_token = timestep
    with torch.no_grad():
        sample = model(hidden_states=hidden, timestep=per_token, encoder_hidden_states=text, return_dict=False)[0]
    save_file({"hidden_states": hidden.contiguous(), "timestep": timestep, "encoder_hidden_states": text.contiguous(),
               "sample": sample.contiguous()}, out_dir / f"{name}.io.safetensors")
    return sample


def main():
    out_dir = pathlib.Path(sys.argv[1]) if len(sys.argv) > 1 and not sys.argv[1].startswith("--") else DEFAULT_OUT
    names = list(CONFIGS)
    if "--configs" in sys.argv:
        names = sys.argv[sys.argv.index("--configs") + 1].split(",")
    out_dir.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(0)
    for name in names:
        sample = build(name, CONFIGS[name], out_dir, seed=100 + list(CONFIGS).index(name))
        print(f"{name}: output {tuple(sample.shape)}, max |x| {sample.abs().max().item():.3f}")


if __name__ == "__main__":
    main()
