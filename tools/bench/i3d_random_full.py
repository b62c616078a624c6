"""Random full-size I3D weights (the PyTorch port's names and shapes) for timing
`reel eval fvd --features` where the real weights cannot be downloaded.

The parity fixture crates/reel-eval/tests/fixtures/i3d_tiny.safetensors is I3D with every
channel count divided by 8 (tools/reference/i3d.py); its shapes times 8 (but the first
convolution's 3 input channels) are the real network's: 12.7 M parameters, 400 logits. Batch norms are identity,
convolutions He-normal. Standard library only.

    python3 tools/bench/i3d_random_full.py OUT.safetensors
"""
import json
import math
import pathlib
import random
import struct
import sys

ROOT = pathlib.Path(__file__).resolve().parents[2]
FIXTURE = ROOT / "crates/reel-eval/tests/fixtures/i3d_tiny.safetensors"


def main():
    out = pathlib.Path(sys.argv[1] if len(sys.argv) > 1 else "i3d_full.safetensors")
    raw = FIXTURE.read_bytes()
    (n,) = struct.unpack("<Q", raw[:8])
    tiny = json.loads(raw[8 : 8 + n])
    rng = random.Random(0)
    header, chunks, offset = {}, [], 0
    for name in sorted(k for k in tiny if k != "__metadata__"):
        shape = list(tiny[name]["shape"])
        shape[0] *= 8
        if len(shape) > 1 and not name.startswith("Conv3d_1a_7x7"):  # the first conv reads RGB
            shape[1] *= 8
        count = math.prod(shape)
        if name.endswith("conv3d.weight"):
            std = math.sqrt(2.0 / math.prod(shape[1:]))
            values = [rng.gauss(0.0, std) for _ in range(count)]
        elif name.endswith(("running_var", "bn.weight")):
            values = [1.0] * count
        else:
            values = [0.0] * count
        chunk = struct.pack(f"<{count}f", *values)
        header[name] = {"dtype": "F32", "shape": shape, "data_offsets": [offset, offset + len(chunk)]}
        chunks.append(chunk)
        offset += len(chunk)
    text = json.dumps(header).encode()
    text += b" " * (-len(text) % 8)
    with open(out, "wb") as f:
        f.write(struct.pack("<Q", len(text)) + text)
        for chunk in chunks:
            f.write(chunk)
    print(f"{out}: {sum(math.prod(h['shape']) for h in header.values())} parameters")


if __name__ == "__main__":
    main()
