"""Classical latents: the paper's ``gaussian`` and ``bernoulli`` baselines, and two controls
matched to a photon latent's exact moments.

* ``gaussian``: N(0, I).
* ``bernoulli``: independent {0, 1} coordinates with probability ``p`` (0.5).
* ``gaussian_matched``: a Gaussian with the exact mean and covariance of the quantum (or
  photonic, ``match="photonic"``) latent of the same circuit: equal first and second moments,
  none of the higher ones.
* ``counts_matched``: a Dirichlet-multinomial count distribution with ``n`` photons that
  matches the photon latent's mean occupations exactly and its photon-weighted Fano factor
  ``sum_j Var[s_j] / n`` exactly (one concentration parameter).  Like the photon latents it
  conserves the total count; unlike them it has no interference structure.

Rows are drawn in fixed blocks of :data:`BLOCK` rows, block ``b`` of stream ``s`` from its own
SeedSequence child ``(s, b)``, so row ``i`` depends only on ``(seed, i)``.
"""

from __future__ import annotations

from typing import Optional, Sequence

import numpy as np

from .._validation import count_dtype
from . import moments
from .base import DEFAULT_DIM, Latent, SeedTemplate
from .photonic import resolve_circuit, unitary_sha256

__all__ = ["BLOCK", "GaussianLatent", "BernoulliLatent", "MatchedGaussianLatent", "MatchedCountsLatent"]

#: Rows per independently seeded block of a classical stream.
BLOCK = 1024


class _BlockLatent(Latent):
    """A classical latent drawn block by block (index-deterministic)."""

    def _block(self, rng: np.random.Generator, rows: int) -> np.ndarray:
        raise NotImplementedError

    def _draw(self, start: int, stop: int, seed: SeedTemplate, threads: Optional[int]) -> np.ndarray:
        first, last = start // BLOCK, (stop - 1) // BLOCK
        parts = []
        for b in range(first, last + 1):
            rows = self._block(np.random.default_rng(seed.sequence(b)), BLOCK)
            lo = max(start - b * BLOCK, 0)
            hi = min(stop - b * BLOCK, BLOCK)
            parts.append(rows[lo:hi])
        return np.ascontiguousarray(np.concatenate(parts, axis=0), dtype=self.raw_dtype)


class GaussianLatent(_BlockLatent):
    """Standard normal N(0, I) latent vectors (raw rows are float32)."""

    name = "gaussian"

    @property
    def mean(self) -> np.ndarray:
        return np.zeros(self.dim)

    @property
    def std(self) -> np.ndarray:
        return np.ones(self.dim)

    @property
    def covariance(self) -> np.ndarray:
        return np.eye(self.dim)

    @property
    def raw_dtype(self) -> np.dtype:
        return np.dtype(np.float32)

    def _block(self, rng, rows):
        return rng.standard_normal((rows, self.dim), dtype=np.float32)

    def _spec(self) -> dict:
        return {}

    def describe(self) -> str:
        return f"gaussian latent N(0, I), dim={self.dim}, seed={self.seed}" + ("; unit variance" if self.scale else "")


class BernoulliLatent(_BlockLatent):
    """Independent Bernoulli(p) coordinates in {0, 1} (raw rows are uint8)."""

    name = "bernoulli"

    def __init__(self, dim: int = DEFAULT_DIM, *, p: float = 0.5, **kwargs) -> None:
        super().__init__(dim, **kwargs)
        p = float(p)
        if not 0.0 < p < 1.0:
            raise ValueError(f"bernoulli probability p must lie in (0, 1), got {p}")
        self.p = p

    @property
    def mean(self) -> np.ndarray:
        return np.full(self.dim, self.p)

    @property
    def std(self) -> np.ndarray:
        return np.full(self.dim, np.sqrt(self.p * (1 - self.p)))

    @property
    def covariance(self) -> np.ndarray:
        return np.eye(self.dim) * self.p * (1 - self.p)

    @property
    def raw_dtype(self) -> np.dtype:
        return np.dtype(np.uint8)

    def _block(self, rng, rows):
        return (rng.random((rows, self.dim)) < self.p).astype(np.uint8)

    def _spec(self) -> dict:
        return {"p": self.p}

    def describe(self) -> str:
        norm = "; centred" if self.centre else ""
        return f"bernoulli latent {{0,1}}^{self.dim}, p={self.p}, seed={self.seed}{norm}" + (
            ", unit variance" if self.scale else ""
        )


class _MatchedLatent(_BlockLatent):
    """Shared set-up of the moment-matched controls: the circuit and its exact moments."""

    def __init__(
        self,
        dim: int = DEFAULT_DIM,
        *,
        seed=None,
        n_photons: Optional[int] = None,
        unitary=None,
        input_modes: Optional[Sequence[int]] = None,
        match: str = "quantum",
        centre: bool = True,
        scale: bool = False,
    ) -> None:
        from .base import as_seed_int

        if match not in ("quantum", "photonic"):
            raise ValueError(f"match must be 'quantum' or 'photonic', got {match!r}")
        seed = as_seed_int(seed)
        m, u, modes = resolve_circuit(dim, seed, n_photons, unitary, input_modes)
        super().__init__(m, seed=seed, centre=centre, scale=scale)
        self.unitary = u
        self.input_modes = modes
        self.n_photons = int(modes.size)
        self.match = match
        self._mean = moments.mean_counts(u, modes)
        self._target_cov = moments.covariance(u, modes, distinguishable=match == "photonic")

    @property
    def mean(self) -> np.ndarray:
        return self._mean

    def _spec(self) -> dict:
        return {
            "n_photons": self.n_photons,
            "input_modes": self.input_modes.tolist(),
            "unitary": [[float(z.real), float(z.imag)] for z in self.unitary.ravel()],
            "unitary_sha256": unitary_sha256(self.unitary),
            "match": self.match,
        }


class MatchedGaussianLatent(_MatchedLatent):
    """Gaussian with the exact mean and covariance of a photon latent (raw rows float32)."""

    name = "gaussian_matched"

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        # A symmetric square root of the (PSD, possibly singular: total photon number is fixed) covariance.
        w, v = np.linalg.eigh(self._target_cov)
        self._root = (v * np.sqrt(np.clip(w, 0.0, None))) @ v.T

    @property
    def std(self) -> np.ndarray:
        return np.sqrt(np.clip(np.diag(self._target_cov), 0.0, None))

    @property
    def covariance(self) -> np.ndarray:
        return self._target_cov

    @property
    def raw_dtype(self) -> np.dtype:
        return np.dtype(np.float32)

    def _block(self, rng, rows):
        z = rng.standard_normal((rows, self.dim))
        return (self._mean + z @ self._root).astype(np.float32)

    def describe(self) -> str:
        return (
            f"gaussian_matched latent, dim={self.dim}: N(mean, cov) with the exact moments of the {self.match} latent "
            f"({self.n_photons} photons, unitary sha256 {unitary_sha256(self.unitary)[:12]}), seed={self.seed}"
        )


def systematic_counts(p: np.ndarray, n: int, u: np.ndarray) -> np.ndarray:
    """Systematic (low-variance) allocation of ``n`` counts to modes with probabilities ``p``.

    For each offset ``u`` in [0, 1): the points ``(u + k) / n``, k = 0..n-1, fall into the
    cumulative intervals of ``p``; mode j gets ``floor(n p_j)`` or ``ceil(n p_j)`` counts.
    Returns shape (len(u), m), int64.
    """
    edges = np.cumsum(p)
    pts = (np.asarray(u, dtype=np.float64)[:, None] + np.arange(n)) / n
    idx = np.minimum(np.searchsorted(edges, pts, side="right"), p.size - 1)
    out = np.zeros((pts.shape[0], p.size), dtype=np.int64)
    np.add.at(out, (np.repeat(np.arange(pts.shape[0]), n), idx.ravel()), 1)
    return out


def systematic_moments(p: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Exact mean and covariance of :func:`systematic_counts` with ``u ~ U[0, 1)``.

    The counts are piecewise constant in ``u``, changing only where a point crosses a
    cumulative edge (at ``u = frac(n * edge)``): evaluate each piece once, weight by its length.
    """
    edges = np.cumsum(p)[:-1]
    breaks = np.unique(np.concatenate([[0.0, 1.0], np.mod(n * edges, 1.0)]))
    lengths = np.diff(breaks)
    keep = lengths > 0
    mids = (breaks[:-1] + breaks[1:])[keep] / 2
    w = lengths[keep]
    s = systematic_counts(p, n, mids).astype(np.float64)
    mean = w @ s
    cov = (s * w[:, None]).T @ s - np.outer(mean, mean)
    return mean, (cov + cov.T) / 2


class MatchedCountsLatent(_MatchedLatent):
    """Classical counts of ``n`` photons with the photon latent's mean occupations and Fano factor.

    Both statistics are matched exactly: the mean ``mu`` and the photon-weighted Fano factor
    ``sum_j Var[s_j] / n``, i.e. the total variance ``V`` (``p = mu / n``; a multinomial would
    give ``V_mult = n sum_j p_j (1 - p_j)``).

    * Over-dispersed targets (``V > V_mult``, the usual quantum case): Dirichlet-multinomial,
      ``p' ~ Dirichlet(alpha0 p)``, ``s ~ Multinomial(n, p')``, with
      ``Var[s_j] = n p_j (1 - p_j) (n + alpha0) / (1 + alpha0)`` and ``alpha0`` solving for ``V``.
    * Under-dispersed targets (photonic latents, some structured circuits): a mixture that draws
      each row from the multinomial with probability ``w`` and otherwise by systematic
      (low-variance) allocation, whose counts are ``floor``/``ceil`` of ``n p_j``; both have
      mean ``n p``, and ``w`` solves for ``V``.
    """

    name = "counts_matched"

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        n = self.n_photons
        p = self._mean / n
        p = np.clip(p, 0.0, None)
        p = p / p.sum()
        self._p = p
        mult_cov = n * (np.diag(p) - np.outer(p, p))
        v_mult = float(np.trace(mult_cov))
        v_target = float(np.trace(self._target_cov))
        if v_target > v_mult * (1 + 1e-12) + 1e-12:  # absolute slack too: v_mult is 0 for one mode
            ratio = v_target / v_mult
            if n == 1 or ratio >= n:
                raise ValueError(f"variance ratio {ratio:.4f} >= n={n}: no Dirichlet-multinomial matches it")
            self.family = "dirichlet-multinomial"
            self.concentration = (n - ratio) / (ratio - 1.0)
            self.multinomial_weight = None
            self._cov = mult_cov * (n + self.concentration) / (1 + self.concentration)
        else:
            _, sys_cov = systematic_moments(p, n)
            v_sys = float(np.trace(sys_cov))
            if v_target < v_sys - 1e-12:
                raise ValueError(
                    f"the {self.match} latent's total variance {v_target:.4f} is below that of systematic "
                    f"allocation ({v_sys:.4f}); no classical count control here matches it"
                )
            self.family = "multinomial/systematic mixture"
            self.concentration = None
            w = 1.0 if v_mult - v_sys <= 1e-15 else (v_target - v_sys) / (v_mult - v_sys)
            self.multinomial_weight = float(min(1.0, max(0.0, w)))
            self._cov = self.multinomial_weight * mult_cov + (1 - self.multinomial_weight) * sys_cov

    @property
    def std(self) -> np.ndarray:
        return np.sqrt(np.clip(np.diag(self._cov), 0.0, None))

    @property
    def covariance(self) -> np.ndarray:
        return self._cov

    @property
    def raw_dtype(self) -> np.dtype:
        return count_dtype(self.n_photons)

    def _block(self, rng, rows):
        n, p = self.n_photons, self._p
        if self.concentration is not None:
            alpha = np.where(p > 0, self.concentration * p, 1e-300)
            probs = rng.dirichlet(alpha, size=rows)
            return rng.multinomial(n, probs).astype(self.raw_dtype)
        pick = rng.random(rows) < self.multinomial_weight
        u = rng.random(rows)
        mult = rng.multinomial(n, p, size=rows)
        out = np.where(pick[:, None], mult, systematic_counts(p, n, u))
        return out.astype(self.raw_dtype)

    def describe(self) -> str:
        fano = float(np.trace(self._cov) / self.n_photons)
        par = (
            f"concentration {self.concentration:.3f}" if self.concentration is not None
            else f"multinomial weight {self.multinomial_weight:.3f}"
        )
        return (
            f"counts_matched latent, dim={self.dim}: {self.family}, {self.n_photons} counts, {par}, "
            f"mean and Fano factor {fano:.3f} of the {self.match} latent, seed={self.seed}"
        )
