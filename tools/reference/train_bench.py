"""The training step of configs/bench/train-bundled-size.toml in PyTorch/diffusers: the same
WanTransformer3DModel config, batch 4 of 5x8x8 latents (16 channels) with 32x128 text
embeddings, logit-normal timesteps, flow-matching MSE, global-norm clipping at 1.0, AdamW.
Prints one JSON line (median samples/s over steps 6..30, peak RSS). Usage:
  python tools/reference/train_bench.py --threads 2
"""
import argparse, json, resource, statistics, time

import torch
from diffusers import WanTransformer3DModel

p = argparse.ArgumentParser()
p.add_argument("--threads", type=int, default=2)
p.add_argument("--steps", type=int, default=30)
a = p.parse_args()
torch.set_num_threads(a.threads)
torch.manual_seed(0)
model = WanTransformer3DModel(patch_size=(1, 2, 2), num_attention_heads=4, attention_head_dim=64, in_channels=16,
                              out_channels=16, text_dim=128, freq_dim=64, ffn_dim=768, num_layers=6,
                              cross_attn_norm=True, qk_norm="rms_norm_across_heads", eps=1e-6, rope_max_seq_len=1024)
model.train()
opt = torch.optim.AdamW(model.parameters(), lr=1e-4, weight_decay=0.01)
b = 4
x0 = torch.randn(b, 16, 5, 8, 8)
text = torch.randn(b, 32, 128)
rates = []
for step in range(a.steps):
    t0 = time.perf_counter()
    sigma = torch.sigmoid(torch.randn(b))
    noise = torch.randn_like(x0)
    xt = (1 - sigma.view(b, 1, 1, 1, 1)) * x0 + sigma.view(b, 1, 1, 1, 1) * noise
    pred = model(hidden_states=xt, timestep=sigma * 1000, encoder_hidden_states=text, return_dict=False)[0]
    loss = torch.nn.functional.mse_loss(pred, noise - x0)
    opt.zero_grad()
    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
    opt.step()
    rates.append(b / (time.perf_counter() - t0))
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(json.dumps({"impl": "diffusers", "torch": torch.__version__, "samples_per_s": statistics.median(rates[5:]),
                  "peak_memory_mib": peak, "steps_timed": len(rates) - 5}))
