"""Times diffusers on the same weights and shapes as `reel bench transformer|vae`.

  bench.py transformer --make CONFIG.json --out DIR   # random weights, saved for Reel to load too
  bench.py transformer --model DIR --frames 17 --height 64 --width 64 [--batch 1 --text-len 32 --iters 3 --threads 2]
  bench.py vae ...                                    # decode (or --encode)

Prints one JSON line in the schema `reel bench` uses ("implementation": "diffusers").
"""

import argparse
import json
import resource
import time

import torch
from diffusers import AutoencoderKLWan, WanTransformer3DModel


def peak_rss_mib():
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("component", choices=["transformer", "vae"])
    p.add_argument("--model")
    p.add_argument("--make")
    p.add_argument("--out")
    p.add_argument("--frames", type=int, default=17)
    p.add_argument("--height", type=int, default=64)
    p.add_argument("--width", type=int, default=64)
    p.add_argument("--batch", type=int, default=1)
    p.add_argument("--text-len", type=int, default=32)
    p.add_argument("--iters", type=int, default=3)
    p.add_argument("--no-warmup", action="store_true")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--encode", action="store_true")
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    cls = WanTransformer3DModel if a.component == "transformer" else AutoencoderKLWan
    if a.make:
        torch.manual_seed(0)
        model = cls(**json.load(open(a.make)))
        model.save_pretrained(a.out)
        print(json.dumps({"saved": a.out}))
        return
    start_rss = peak_rss_mib()
    model = cls.from_pretrained(a.model).eval()
    loaded_rss = peak_rss_mib()
    lf, lh, lw = 1 + (a.frames - 1) // 4, a.height // 8, a.width // 8
    with torch.no_grad():
        if a.component == "transformer":
            c = model.config
            hidden = torch.randn(a.batch, c.in_channels, lf, lh, lw)
            text = torch.randn(a.batch, a.text_len, c.text_dim)
            t = torch.full((a.batch,), 500.0)
            run = lambda: model(hidden_states=hidden, timestep=t, encoder_hidden_states=text, return_dict=False)
        elif a.encode:
            x = torch.rand(a.batch, 3, a.frames, a.height, a.width) * 2 - 1
            run = lambda: model.encode(x)
        else:
            z = torch.randn(a.batch, model.config.z_dim, lf, lh, lw)
            run = lambda: model.decode(z)
        if not a.no_warmup:
            run()
        times = []
        for _ in range(max(1, a.iters)):
            t0 = time.perf_counter()
            run()
            times.append(time.perf_counter() - t0)
    out = {"component": a.component if a.component == "transformer" else ("vae-encode" if a.encode else "vae-decode"),
           "implementation": "diffusers", "torch": torch.__version__, "threads": torch.get_num_threads(),
           "batch": a.batch, "frames": a.frames, "height": a.height, "width": a.width,
           "seconds_mean": round(sum(times) / len(times), 4), "seconds_best": round(min(times), 4),
           "peak_rss_mib_start": start_rss, "peak_rss_mib_loaded": loaded_rss, "peak_rss_mib": peak_rss_mib()}
    print(json.dumps(out))


if __name__ == "__main__":
    main()
