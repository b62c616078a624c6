"""Fréchet distance fixtures for crates/reel-eval/tests/frechet_parity.rs.

The reference is the formula as pytorch-fid and StyleGAN-V's FVD compute it, with
scipy.linalg.sqrtm for the matrix square root (real part kept).

    /opt/reel-ref/bin/pip install numpy scipy
    /opt/reel-ref/bin/python tools/reference/frechet.py
"""
import json
import pathlib

import numpy as np
from scipy import linalg


def frechet(a, b):
    mu1, mu2 = a.mean(axis=0), b.mean(axis=0)
    s1, s2 = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    covmean, _ = linalg.sqrtm(s1.dot(s2), disp=False)
    covmean = covmean.real
    diff = mu1 - mu2
    return float(diff.dot(diff) + np.trace(s1) + np.trace(s2) - 2 * np.trace(covmean))


rng = np.random.default_rng(20261122)
cases = []
# Well-conditioned: more samples than dimensions, correlated features, shifted means.
mix = rng.normal(size=(8, 8))
a = rng.normal(size=(60, 8)) @ mix
b = rng.normal(size=(45, 8)) @ (mix * 1.3) + 0.5
cases.append(("correlated", a, b))
# Same distribution, different draws: a small distance.
cases.append(("same", rng.normal(size=(80, 6)), rng.normal(size=(80, 6))))
# Fewer samples than dimensions: singular covariances.
cases.append(("singular", rng.normal(size=(6, 10)), rng.normal(size=(7, 10)) * 2.0 + 1.0))

out = []
for name, a, b in cases:
    a = a.astype(np.float32)
    b = b.astype(np.float32)
    out.append({"name": name, "a": a.tolist(), "b": b.tolist(), "distance": frechet(a.astype(np.float64), b.astype(np.float64))})

path = pathlib.Path(__file__).resolve().parents[2] / "crates/reel-eval/tests/fixtures/frechet.json"
path.write_text(json.dumps({"scipy": __import__("scipy").__version__, "numpy": np.__version__, "cases": out}))
print(path, [(c["name"], c["distance"]) for c in out])
