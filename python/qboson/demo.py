"""``qboson demo``: quantum vs photonic latents side by side, in a few seconds.

Samples n indistinguishable photons (the "quantum" latent) and n distinguishable photons
(the "photonic" control) through one Haar-random m-mode interferometer, and prints the
statistics that tell them apart: the mean occupations agree, bunching does not.
"""

from __future__ import annotations

import time

import numpy as np

from .sampling import sample
from .unitary import haar_unitary


def latent_statistics(x: np.ndarray) -> dict:
    """Summary statistics of photon-count samples x (shots, m)."""
    x = np.asarray(x, dtype=np.float64)
    mean, var = x.mean(axis=0), x.var(axis=0)
    corr = np.corrcoef(x, rowvar=False)
    off = corr[~np.eye(corr.shape[0], dtype=bool)]
    return {
        "mean occupation": float(mean.mean()),
        "Fano factor (var/mean)": float(np.mean(var / mean)),
        "P(mode holds >= 2)": float(np.mean(x >= 2)),
        "P(mode holds 3)": float(np.mean(x == 3)),
        "P(all photons apart)": float(np.mean(np.all(x <= 1, axis=1))),
        "mean pair correlation": float(off.mean()),
    }


def run(n: int = 8, m: int = 16, shots: int = 20_000, seed: int = 0) -> str:
    u = haar_unitary(m, seed=seed)
    rows = {}
    times = {}
    for name, dist in (("quantum", False), ("photonic", True)):
        t0 = time.perf_counter()
        x = sample(unitary=u, n=n, shots=shots, seed=seed, distinguishable=dist)
        times[name] = time.perf_counter() - t0
        rows[name] = latent_statistics(x)
    lines = [
        f"{n} photons in {m} modes, {shots:,} exact samples each, one Haar-random interferometer (seed {seed})",
        "",
        f"| statistic | quantum | photonic |",
        "|---|---|---|",
    ]
    for key in rows["quantum"]:
        lines.append(f"| {key} | {rows['quantum'][key]:.4f} | {rows['photonic'][key]:.4f} |")
    lines.append(
        f"| seconds for {shots:,} samples | {times['quantum']:.3f} | {times['photonic']:.3f} |"
    )
    return "\n".join(lines)


def register(subparsers) -> None:
    p = subparsers.add_parser("demo", help="quantum vs photonic latents side by side")
    p.add_argument("--n", type=int, default=8, help="photons (default 8)")
    p.add_argument("--m", type=int, default=16, help="modes (default 16)")
    p.add_argument("--shots", type=int, default=20_000)
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=lambda args: print(run(args.n, args.m, args.shots, args.seed)) or 0)
