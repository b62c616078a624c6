"""Scheduler parity fixtures: full sampling loops in diffusers, driven by a fixed fake model.

The fake model is `v = ref * (1 + t / 1000) - 0.5 * sample` (float32), which
Reel's test re-implements exactly. For each config the fixture stores the
initial sample, `ref`, the timesteps and sigmas diffusers set, and the sample
after every step.

Run: /opt/reel-ref/bin/python tools/reference/schedulers.py
"""

import json
import pathlib

import diffusers
import torch
from diffusers import FlowMatchEulerDiscreteScheduler, UniPCMultistepScheduler
from safetensors.torch import save_file

OUT = pathlib.Path(__file__).resolve().parents[2] / "crates/reel-schedulers/tests/fixtures"
SHAPE = (1, 4, 3, 4, 6)  # [B, C, F, H, W], a small video latent


def calculate_shift(seq_len, base_len=256, max_len=4096, base_shift=0.5, max_shift=1.15):
    m = (max_shift - base_shift) / (max_len - base_len)
    return seq_len * m + (base_shift - m * base_len)


CASES = [
    ("euler_shift1", FlowMatchEulerDiscreteScheduler, {"shift": 1.0}, 20, None),
    ("euler_shift3", FlowMatchEulerDiscreteScheduler, {"shift": 3.0}, 20, None),
    ("euler_dynamic", FlowMatchEulerDiscreteScheduler, {"use_dynamic_shifting": True}, 20, calculate_shift(1024)),
    ("euler_terminal", FlowMatchEulerDiscreteScheduler, {"shift": 2.0, "shift_terminal": 0.1}, 7, None),
    ("unipc_wan_shift3", UniPCMultistepScheduler,
     {"prediction_type": "flow_prediction", "use_flow_sigmas": True, "flow_shift": 3.0, "solver_order": 2}, 20, None),
    ("unipc_order3_bh1_shift5", UniPCMultistepScheduler,
     {"prediction_type": "flow_prediction", "use_flow_sigmas": True, "flow_shift": 5.0, "solver_order": 3,
      "solver_type": "bh1"}, 20, None),
    ("unipc_no_corrector3_sigma_min", UniPCMultistepScheduler,
     {"prediction_type": "flow_prediction", "use_flow_sigmas": True, "flow_shift": 1.0, "solver_order": 2,
      "disable_corrector": [3], "final_sigmas_type": "sigma_min", "lower_order_final": False}, 12, None),
    ("unipc_dynamic", UniPCMultistepScheduler,
     {"prediction_type": "flow_prediction", "use_flow_sigmas": True, "use_dynamic_shifting": True,
      "solver_order": 2}, 20, calculate_shift(2048)),
]


def fake_model(sample, t, ref):
    a = 1.0 + float(t) / 1000.0
    return ref * a - sample * 0.5


def main():
    OUT.mkdir(parents=True, exist_ok=True)
    gen = torch.Generator().manual_seed(0)
    tensors, index = {}, []
    for name, cls, config, steps, mu in CASES:
        scheduler = cls(**config)
        scheduler.set_timesteps(steps, mu=mu) if mu is not None else scheduler.set_timesteps(steps)
        sample = torch.randn(SHAPE, generator=gen, dtype=torch.float32)
        ref = torch.randn(SHAPE, generator=gen, dtype=torch.float32)
        tensors[f"{name}.init"] = sample.clone()
        tensors[f"{name}.ref"] = ref
        tensors[f"{name}.timesteps"] = scheduler.timesteps.to(torch.float32).clone()
        tensors[f"{name}.sigmas"] = scheduler.sigmas.to(torch.float32).clone()
        history = []
        for t in scheduler.timesteps:
            sample = scheduler.step(fake_model(sample, t, ref), t, sample).prev_sample
            history.append(sample.clone())
        tensors[f"{name}.samples"] = torch.stack(history)
        index.append({"name": name, "config": {"_class_name": cls.__name__, **config}, "steps": steps, "mu": mu})
    save_file(tensors, OUT / "schedulers.safetensors")
    (OUT / "schedulers.json").write_text(json.dumps(
        {"torch": torch.__version__, "diffusers": diffusers.__version__, "cases": index}, indent=1) + "\n")
    print(f"wrote {len(index)} cases to {OUT}")


if __name__ == "__main__":
    main()
