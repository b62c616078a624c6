"""I3D parity fixture for crates/reel-eval/tests/i3d_parity.rs.

A PyTorch I3D written here from the paper (Carreira & Zisserman 2017) with the parameter
names and padding rules of the widely used PyTorch port (piergiaj/pytorch-i3d): units are
Conv3d (no bias) + BatchNorm3d(eps=1e-3) + ReLU with TensorFlow "SAME" padding computed
from the input size, pools zero-pad the same way, AvgPool3d([2, 7, 7]) before the logits.
Every channel count is an eighth of the real network's (400 classes -> 50), so the random
weights stay small; Reel reads the widths from the weights, so the same code loads the
real network. The weights are rounded to float16 (stored so) and the model runs on the
rounded values.

    /opt/reel-ref/bin/pip install torch safetensors
    /opt/reel-ref/bin/python tools/reference/i3d.py
"""
import json
import math
import pathlib

import torch
import torch.nn as nn
import torch.nn.functional as F
from safetensors.torch import save_file

WIDTH = 8  # channel divisor
OUT = pathlib.Path(__file__).resolve().parents[2] / "crates/reel-eval/tests/fixtures"


def same_pad(x, kernel, stride):
    pads = []
    for axis in (2, 1, 0):  # F.pad takes the last dimension first
        n, k, s = x.shape[2 + axis], kernel[axis], stride[axis]
        p = max(k - s, 0) if n % s == 0 else max(k - n % s, 0)
        pads += [p // 2, p - p // 2]
    return F.pad(x, pads)


class Unit(nn.Module):
    def __init__(self, cin, cout, k=(1, 1, 1), s=(1, 1, 1), bn=True):
        super().__init__()
        self.k, self.s = k, s
        self.conv3d = nn.Conv3d(cin, cout, k, s, bias=not bn)
        self.bn = nn.BatchNorm3d(cout, eps=1e-3) if bn else None

    def forward(self, x):
        x = self.conv3d(same_pad(x, self.k, self.s))
        return F.relu(self.bn(x)) if self.bn is not None else x


def pool(x, k, s):
    return F.max_pool3d(same_pad(x, k, s), k, s)


class Inception(nn.Module):
    def __init__(self, cin, c):
        super().__init__()
        self.b0 = Unit(cin, c[0])
        self.b1a, self.b1b = Unit(cin, c[1]), Unit(c[1], c[2], (3, 3, 3))
        self.b2a, self.b2b = Unit(cin, c[3]), Unit(c[3], c[4], (3, 3, 3))
        self.b3b = Unit(cin, c[5])

    def forward(self, x):
        return torch.cat([self.b0(x), self.b1b(self.b1a(x)), self.b2b(self.b2a(x)), self.b3b(pool(x, (3, 3, 3), (1, 1, 1)))], 1)


BLOCKS = [  # name, channel split, pool before
    ("Mixed_3b", [64, 96, 128, 16, 32, 32], ((1, 3, 3), (1, 2, 2))),
    ("Mixed_3c", [128, 128, 192, 32, 96, 64], None),
    ("Mixed_4b", [192, 96, 208, 16, 48, 64], ((3, 3, 3), (2, 2, 2))),
    ("Mixed_4c", [160, 112, 224, 24, 64, 64], None),
    ("Mixed_4d", [128, 128, 256, 24, 64, 64], None),
    ("Mixed_4e", [112, 144, 288, 32, 64, 64], None),
    ("Mixed_4f", [256, 160, 320, 32, 128, 128], None),
    ("Mixed_5b", [256, 160, 320, 32, 128, 128], ((2, 2, 2), (2, 2, 2))),
    ("Mixed_5c", [384, 192, 384, 48, 128, 128], None),
]


class I3D(nn.Module):
    def __init__(self, w, classes):
        super().__init__()
        self.Conv3d_1a_7x7 = Unit(3, 64 // w, (7, 7, 7), (2, 2, 2))
        self.Conv3d_2b_1x1 = Unit(64 // w, 64 // w)
        self.Conv3d_2c_3x3 = Unit(64 // w, 192 // w, (3, 3, 3))
        cin = 192 // w
        self.pools = {}
        for name, c, p in BLOCKS:
            c = [v // w for v in c]
            setattr(self, name, Inception(cin, c))
            self.pools[name] = p
            cin = c[0] + c[2] + c[4] + c[5]
        self.logits = Unit(cin, classes, bn=False)

    def forward(self, x):
        x = self.Conv3d_1a_7x7(x)
        x = pool(x, (1, 3, 3), (1, 2, 2))
        x = self.Conv3d_2c_3x3(self.Conv3d_2b_1x1(x))
        for name, _, p in BLOCKS:
            if p is not None:
                x = pool(x, *p)
            x = getattr(self, name)(x)
        pooled = F.avg_pool3d(x, (2, 7, 7), (1, 1, 1))
        logits = self.logits(pooled)
        return logits.flatten(2).mean(2), pooled.flatten(2).mean(2)


def clip_input():
    """[1, 3, 16, 224, 224]: sin(0.1·(c+1)·h + 0.07·w − 0.3·t)·0.9, built in float64."""
    c = torch.arange(3, dtype=torch.float64).view(3, 1, 1, 1)
    t = torch.arange(16, dtype=torch.float64).view(1, 16, 1, 1)
    h = torch.arange(224, dtype=torch.float64).view(1, 1, 224, 1)
    w = torch.arange(224, dtype=torch.float64).view(1, 1, 1, 224)
    return (torch.sin(0.1 * (c + 1) * h + 0.07 * w - 0.3 * t) * 0.9).float().unsqueeze(0)


def main():
    torch.manual_seed(20261122)
    model = I3D(WIDTH, 400 // WIDTH).eval()
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.BatchNorm3d):
                m.weight.uniform_(0.5, 1.5)
                m.bias.uniform_(-0.2, 0.2)
                m.running_mean.uniform_(-0.2, 0.2)
                m.running_var.uniform_(0.5, 2.0)
        state = {k: v.half() for k, v in model.state_dict().items() if not k.endswith("num_batches_tracked")}
        model.load_state_dict({k: v.float() for k, v in state.items()}, strict=False)
        logits, pooled = model(clip_input())
    save_file(state, str(OUT / "i3d_tiny.safetensors"))
    fixture = {
        "width_divisor": WIDTH,
        "input": "sin(0.1*(c+1)*h + 0.07*w - 0.3*t)*0.9, shape [1, 3, 16, 224, 224]",
        "logits": logits[0].tolist(),
        "pooled": pooled[0].tolist(),
    }
    (OUT / "i3d.json").write_text(json.dumps(fixture, indent=1) + "\n")
    params = sum(v.numel() for v in state.values())
    print(f"{params} parameters; logits {logits.shape}, pooled {pooled.shape}; |logits| max {logits.abs().max():.3f}")


if __name__ == "__main__":
    main()
