"""Empirical statistics of count samples and the ``qboson inspect`` plots.

All functions take ``samples`` of shape (shots, m) (raw counts; any numeric dtype) and return
float64 arrays.  Plotting needs matplotlib (``pip install qboson[plot]``), imported lazily.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional, Sequence

import numpy as np

__all__ = [
    "occupation_histogram",
    "correlation_matrix",
    "fano_factors",
    "bunching_stats",
    "summary",
    "plot_stats",
    "photon_number_histogram",
    "plot_comparison",
]


def _as_samples(samples) -> np.ndarray:
    arr = np.asarray(samples)
    if arr.ndim != 2 or arr.shape[0] < 2:
        raise ValueError(f"samples must have shape (shots >= 2, m), got {arr.shape}")
    return arr


def occupation_histogram(samples, kmax: int = 3) -> np.ndarray:
    """``out[j, k]`` = fraction of shots with ``k`` photons in mode ``j``; the last column is ``>= kmax``.

    Shape (m, kmax + 1).
    """
    s = _as_samples(samples).astype(np.int64)
    clipped = np.minimum(s, kmax)
    return np.stack([(clipped == k).mean(axis=0) for k in range(kmax + 1)], axis=1)


def correlation_matrix(samples) -> np.ndarray:
    """Pearson correlations between modes, shape (m, m) (nan for modes that never vary)."""
    s = _as_samples(samples).astype(np.float64)
    cov = np.cov(s, rowvar=False)
    sd = np.sqrt(np.diag(cov))
    with np.errstate(invalid="ignore", divide="ignore"):
        return cov / np.outer(sd, sd)


def fano_factors(samples) -> np.ndarray:
    """Per-mode ``Var / mean``, shape (m,) (nan where the mean is 0)."""
    s = _as_samples(samples).astype(np.float64)
    mu = s.mean(axis=0)
    var = s.var(axis=0, ddof=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(mu > 0, var / np.where(mu > 0, mu, 1.0), np.nan)


def bunching_stats(samples) -> dict:
    """Bunching summary: fraction of collision-free shots, P(max occupation >= 2 / >= 3), mean
    maximum occupation, and the histogram of the maximum occupation (index = occupation)."""
    s = _as_samples(samples)
    mx = s.max(axis=1).astype(np.int64)
    hist = np.bincount(mx) / mx.size
    return {
        "collision_free": float(np.mean(mx <= 1)),
        "p_max_ge_2": float(np.mean(mx >= 2)),
        "p_max_ge_3": float(np.mean(mx >= 3)),
        "mean_max_occupation": float(mx.mean()),
        "max_occupation_hist": hist.tolist(),
    }


def photon_number_histogram(samples) -> np.ndarray:
    """``out[k]`` = fraction of shots with k photons in total (detected photons per shot), shape (max + 1,)."""
    s = _as_samples(samples)
    totals = s.sum(axis=1, dtype=np.int64)
    return np.bincount(totals) / totals.size


def summary(samples, *, mean: Optional[np.ndarray] = None, covariance: Optional[np.ndarray] = None) -> dict:
    """Empirical statistics, and their deviation from exact ``mean``/``covariance`` when given."""
    s = _as_samples(samples).astype(np.float64)
    mu = s.mean(axis=0)
    var = s.var(axis=0, ddof=1)
    out = {
        "shots": int(s.shape[0]),
        "photons_per_shot": float(s.sum(axis=1).mean()),
        "fano_total": float(var.sum() / mu.sum()) if mu.sum() > 0 else float("nan"),
        "mean_abs_correlation": float(np.nanmean(np.abs(correlation_matrix(s)[~np.eye(s.shape[1], dtype=bool)]))),
    }
    out.update(bunching_stats(samples))
    if mean is not None:
        out["max_abs_mean_error"] = float(np.max(np.abs(mu - mean)))
        out["mean_standard_error"] = float(np.max(np.sqrt(var / s.shape[0])))
    if covariance is not None:
        out["max_abs_cov_error"] = float(np.max(np.abs(np.cov(s, rowvar=False) - covariance)))
        out["fano_total_exact"] = float(np.trace(covariance) / np.sum(mean)) if mean is not None else None
    return out


def plot_stats(datasets: Sequence[tuple[str, np.ndarray]], path, *, kmax: int = 3) -> Path:
    """Draw, for each ``(label, samples)``, one column: per-mode occupation histograms, the
    pairwise correlation matrix and the maximum-occupation (bunching) distribution.  Saves a PNG
    (or any format matplotlib infers from ``path``) and returns its path."""
    plt = _pyplot()
    if not datasets:
        raise ValueError("nothing to plot")
    cols = len(datasets)
    fig, axes = plt.subplots(3, cols, figsize=(5.0 * cols, 12.0), squeeze=False)
    for r in (0, 2):  # comparable y axes across the columns
        for c in range(1, cols):
            axes[r, c].sharey(axes[r, 0])
    hists = [occupation_histogram(s, kmax) for _, s in datasets]
    corrs = [correlation_matrix(s) for _, s in datasets]
    for corr in corrs:
        np.fill_diagonal(corr, np.nan)
    lim = max((float(np.nanmax(np.abs(c))) for c in corrs if np.isfinite(c).any()), default=1.0)
    bunch = [bunching_stats(s)["max_occupation_hist"] for _, s in datasets]
    width = max(len(b) for b in bunch)
    for c, (label, samples) in enumerate(datasets):
        h = hists[c]
        m = h.shape[0]
        bottom = np.zeros(m)
        ax = axes[0, c]
        for k in range(1, kmax + 1):
            ax.bar(np.arange(m), h[:, k], bottom=bottom, label=f"{k}" if k < kmax else f">={k}")
            bottom += h[:, k]
        ax.set_title(f"{label}: P(s_j = k) per mode")
        ax.set_xlabel("mode j")
        ax.set_ylabel("fraction of shots")
        ax.legend(title="k photons", fontsize=8)
        im = axes[1, c].imshow(corrs[c], cmap="RdBu_r", vmin=-lim, vmax=lim)
        axes[1, c].set_title(f"{label}: correlation between modes")
        fig.colorbar(im, ax=axes[1, c], fraction=0.046)
        b = np.zeros(width)
        b[: len(bunch[c])] = bunch[c]
        axes[2, c].bar(np.arange(width), b)
        axes[2, c].set_yscale("log")
        axes[2, c].set_title(f"{label}: max photons in one mode")
        axes[2, c].set_xlabel("max_j s_j")
        axes[2, c].set_ylabel("fraction of shots")
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path


def plot_comparison(datasets: Sequence[tuple[str, np.ndarray]], path, *, title: Optional[str] = None) -> Path:
    """Overlay several count samples (e.g. a noisy latent and its ideal counterpart) in three panels:
    per-mode mean occupation, the photon-number histogram (photons per shot) and the bunching
    distribution (largest count in one mode, log scale).  Saves a PNG and returns its path."""
    plt = _pyplot()
    if not datasets:
        raise ValueError("nothing to plot")
    fig, axes = plt.subplots(1, 3, figsize=(16.0, 4.6))
    k = len(datasets)
    lowest = min(int(_as_samples(s).sum(axis=1).min()) for _, s in datasets)
    width = 0.8 / k
    for i, (label, samples) in enumerate(datasets):
        s = _as_samples(samples)
        mu = s.mean(axis=0)
        se = s.std(axis=0, ddof=1) / np.sqrt(s.shape[0])
        axes[0].errorbar(np.arange(mu.size), mu, yerr=2 * se, marker="o", ms=3, lw=1, capsize=2, label=label)
        h = photon_number_histogram(s)
        axes[1].bar(np.arange(h.size) + (i - (k - 1) / 2) * width, h, width=width, label=label)
        b = np.asarray(bunching_stats(s)["max_occupation_hist"])
        axes[2].bar(np.arange(b.size) + (i - (k - 1) / 2) * width, np.where(b > 0, b, np.nan), width=width, label=label)
    axes[0].set_title("mean photons per mode (bars: 2 standard errors)")
    axes[0].set_xlabel("mode j")
    axes[0].set_ylabel("E[s_j]")
    axes[1].set_xlim(left=lowest - 1)
    axes[1].set_title("photons detected per shot")
    axes[1].set_xlabel("sum_j s_j")
    axes[1].set_ylabel("fraction of shots")
    axes[2].set_title("bunching: largest count in one mode")
    axes[2].set_xlabel("max_j s_j")
    axes[2].set_ylabel("fraction of shots")
    axes[2].set_yscale("log")
    for ax in axes:
        ax.legend(fontsize=8)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path


def _pyplot():
    """matplotlib.pyplot on the Agg backend (ImportError naming the extra without matplotlib)."""
    try:
        import matplotlib

        matplotlib.use("Agg", force=False)
        import matplotlib.pyplot as plt
    except ImportError as exc:
        raise ImportError("plots need matplotlib: pip install qboson[plot]") from exc
    return plt
