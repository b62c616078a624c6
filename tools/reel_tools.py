"""Helpers the Python tools share: running one model component through `reel model run`,
encoding prompts with a model's word-level tokenizer and text encoder, reading a clip's
frames with ffmpeg, reading and writing clip sets (MP4 and a manifest), a VAE round trip, reading and moving a latent cache's entries, noising latents. Needs numpy and safetensors (pip), and ffmpeg for `read_clip` and `write_clips`."""
import json
import os
import re
import subprocess

import numpy as np
from safetensors.numpy import load_file, save_file

REEL = os.environ.get("REEL", os.path.join(os.path.dirname(__file__), "..", "target", "release", "reel"))


def run_component(model, component, tensors, tmp):
    """`reel model run MODEL --component COMPONENT` on `tensors`; its outputs (a dict)."""
    inputs, outputs = os.path.join(tmp, "in.safetensors"), os.path.join(tmp, "out.safetensors")
    save_file(tensors, inputs)
    subprocess.run([REEL, "-q", "model", "run", model, "--component", component, "--inputs", inputs, "--output", outputs],
                   check=True, stdout=subprocess.DEVNULL)
    return load_file(outputs)


def encode_text(model, texts, tmp, max_len=None):
    """The text encoder's output `[N, L, dim]`, zero at padding as the pipeline feeds the
    transformer, and the token counts. Tokens as the model's tokenizer.json makes them
    (lower case, words and punctuation runs, unknown words → [UNK]); L is `max_len`
    (longer prompts are cut) or the longest prompt's length."""
    vocab = json.load(open(os.path.join(model, "tokenizer", "tokenizer.json")))["model"]["vocab"]
    ids = [[vocab.get(w, vocab.get("[UNK]", 1)) for w in re.findall(r"\w+|[^\w\s]+", t.lower())] for t in texts]
    length = max_len or max(map(len, ids))
    ids = [x[:length] for x in ids]
    tokens = np.array([x + [0] * (length - len(x)) for x in ids], np.int64)
    mask = np.array([[1] * len(x) + [0] * (length - len(x)) for x in ids], np.int64)
    h = run_component(model, "text-encoder", {"input_ids": tokens, "attention_mask": mask}, tmp)["last_hidden_state"]
    return (h * mask[:, :, None]).astype(np.float32), [len(x) for x in ids]


def cache_clips(model, cache, wanted, n):
    """Up to `n` entries of a latent cache whose caption `wanted(caption)` accepts, each as
    (index entry, posterior mean `[C, F, H, W]` normalised with MODEL's VAE latent statistics,
    as the transformer sees latents)."""
    index = json.load(open(os.path.join(cache, "index.json")))
    vae = json.load(open(os.path.join(model, "vae", "config.json")))
    mean = np.array(vae["latents_mean"], np.float32).reshape(-1, 1, 1, 1)
    std = np.array(vae["latents_std"], np.float32).reshape(-1, 1, 1, 1)
    picked, shards = [], {}
    for k, e in enumerate(index["entries"]):
        if len(picked) == n:
            break
        if not wanted(e["caption"]):
            continue
        if e["shard"] not in shards:
            shards[e["shard"]] = load_file(os.path.join(cache, f"shard-{e['shard']:05}.safetensors"))
        picked.append((e, ((shards[e["shard"]][f"mean.{k}"] - mean) / std).astype(np.float32)))
    return picked


def noised(x0, eps, sigma, first_frame):
    """Flow-matching input at `sigma` for latents `[N, C, F, H, W]` and the timesteps the
    transformer takes: `[N]`, or with `first_frame` `[N, F]` with the first latent frame
    shown clean at timestep 0 (`train.first_frame_share`'s form)."""
    xt = (1 - sigma) * x0 + sigma * eps
    n, frames = x0.shape[0], x0.shape[2]
    if not first_frame:
        return xt, np.full(n, sigma * 1000, np.float32)
    xt[:, :, 0] = x0[:, :, 0]
    timestep = np.full((n, frames), sigma * 1000, np.float32)
    timestep[:, 0] = 0
    return xt, timestep


def cache_entry(shard, k, j):
    """Entry `k`'s tensors in a loaded latent-cache shard (`reel data cache`'s format:
    `mean.k`, `logvar.k` and, for caches with text, `text.k`), named as entry `j`."""
    return {f"{kind}.{j}": shard[f"{kind}.{k}"] for kind in ("mean", "logvar", "text") if f"{kind}.{k}" in shard}


def read_clip(path):
    """A video's frames as uint8 `[T, H, W, 3]`."""
    info = subprocess.run(["ffprobe", "-v", "error", "-select_streams", "v:0", "-show_entries", "stream=width,height",
                           "-of", "csv=p=0", path], capture_output=True, check=True, text=True).stdout.strip()
    w, h = (int(v) for v in info.split(","))
    raw = subprocess.run(["ffmpeg", "-v", "error", "-i", path, "-f", "rawvideo", "-pix_fmt", "rgb24", "-"],
                         capture_output=True, check=True).stdout
    return np.frombuffer(raw, np.uint8).reshape(-1, h, w, 3)


def read_clip_set(manifest, limit=None):
    """The rows of a clip manifest (`reel data synth`'s format; the first `limit`) and their
    clips as float32 `[N, 3, T, H, W]` in [-1, 1], each cut to its row's frame count (the
    clips must share one size and length)."""
    base = os.path.dirname(os.path.abspath(manifest))
    rows = [json.loads(line) for line in open(manifest) if line.strip()][:limit]
    clips = np.stack([read_clip(os.path.join(base, r["file"]))[:r["frames"]] for r in rows])  # N T H W C
    return rows, np.ascontiguousarray(clips.astype(np.float32).transpose(0, 4, 1, 2, 3) / 127.5 - 1)


def vae_roundtrip(model, x, tmp, batch=16):
    """Clips `x` `[N, 3, T, H, W]` in [-1, 1] encoded by a model's VAE and its posterior means
    decoded, `batch` clips at a time: (the reconstructions clipped to [-1, 1], the means)."""
    decoded, means = [], []
    for i in range(0, len(x), batch):
        mean = run_component(model, "vae-encode", {"sample": np.ascontiguousarray(x[i:i + batch])}, tmp)["mean"]
        decoded.append(run_component(model, "vae-decode", {"latents": mean}, tmp)["sample"])
        means.append(mean)
    return np.clip(np.concatenate(decoded), -1, 1), np.concatenate(means)


def psnr_per_frame(y, x):
    """The PSNR (dB, signals in [-1, 1]) of `y` against `x`, both `[N, C, T, H, W]`, per frame,
    as text."""
    mse = ((y - x) ** 2).mean(axis=(0, 1, 3, 4))
    return " ".join(f"{10 * np.log10(4 / m):.1f}" for m in mse)


def write_clips(out, rows, videos):
    """Writes decoder outputs `[N, 3, T, H, W]` in [-1, 1] as MP4 into `out`, with
    `out/manifest.jsonl`: each row of `rows` (a `reel data synth` manifest's) with its clip's
    file name — a clip set `reel eval adherence --manifest` scores."""
    pixels = ((np.clip(videos, -1, 1) + 1) * 127.5).round().astype(np.uint8).transpose(0, 2, 3, 4, 1)
    os.makedirs(out, exist_ok=True)
    with open(os.path.join(out, "manifest.jsonl"), "w") as m:
        for r, clip in zip(rows, pixels):
            name = os.path.splitext(os.path.basename(r["file"]))[0] + ".mp4"
            # Baseline profile: Reel's built-in H.264 reader (OpenH264) does not take B-frames.
            subprocess.run(["ffmpeg", "-v", "error", "-y", "-f", "rawvideo", "-pix_fmt", "rgb24", "-s", f"{clip.shape[2]}x{clip.shape[1]}",
                            "-r", str(r["fps"]), "-i", "-", "-c:v", "libx264", "-crf", "12", "-profile:v", "baseline",
                            "-pix_fmt", "yuv420p", os.path.join(out, name)], input=clip.tobytes(), check=True)
            m.write(json.dumps({**r, "file": name}) + "\n")
    return os.path.join(out, "manifest.jsonl")
