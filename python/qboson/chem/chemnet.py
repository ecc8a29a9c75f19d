"""Fréchet ChemNet Distance (FCD) with cached reference statistics.

ChemNet activations come from ``fcd_torch``'s pretrained network (the weights ship inside
the package; nothing is downloaded), fed exactly as ``fcd_torch`` feeds it (canonical
SMILES, one-hot over its vocabulary, padded to 350).  The Fréchet distance itself is
computed here (:func:`frechet_distance`): ``fcd_torch`` calls ``scipy.linalg.sqrtm(...,
disp=False)``, which SciPy 1.18 removed.

FCD depends on the number of molecules: compare values only at equal sample sizes (the
MolGAN experiments use 10,000 generated molecules).

ChemNet runs on ``threads=1`` torch thread by default: on a busy 2-core machine two
threads measured 3-4x *slower* than one.  The thread count is restored afterwards.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Sequence

import numpy as np

from ._cache import CorruptCacheError, PathLike, read_npz, resolve_cache_dir, write_npz
from ._deps import quiet_rdkit, require_fcd_torch, require_rdkit, require_torch

__all__ = ["FCDReference", "chemnet_activations", "activation_statistics", "frechet_distance", "fcd",
           "reference_cache_path"]

_REFERENCE_FORMAT = 1
_model_cache: dict[str, Any] = {}


@contextlib.contextmanager
def _torch_threads(threads: int | None) -> Iterator[None]:
    torch = require_torch()
    if threads is None:
        yield
        return
    if isinstance(threads, bool) or not isinstance(threads, int) or threads < 1:
        raise ValueError(f"threads must be a positive int or None, got {threads!r}")
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _chemnet() -> Any:
    """fcd_torch's pretrained ChemNet (loaded once per process, eval mode, CPU)."""
    if "model" not in _model_cache:
        fcd_torch = require_fcd_torch()
        torch = require_torch()
        from fcd_torch.utils import load_imported_model

        path = Path(fcd_torch.__file__).parent / "ChemNet_v0.13_pretrained.pt"
        if not path.is_file():
            raise FileNotFoundError(f"fcd_torch's ChemNet weights are missing: {path}")
        model = load_imported_model(torch.load(path, weights_only=True))  # plain tensors: nothing to unpickle
        model.eval()
        _model_cache["model"] = model
    return _model_cache["model"]


def _token_indices(smiles: str, vocab: dict[str, int], unknown: int, pad_len: int) -> list[int]:
    """fcd_torch's tokenisation (``get_one_hot``) as a list of vocabulary indices.

    Two-letter symbols are those followed by 'r', 'i' or 'l' (Br, Cl, Si); unknown symbols map
    to 'X'; the sequence ends with '.' at the first '.' of the SMILES or at ``pad_len - 1``.
    """
    text = smiles + "."
    out: list[int] = []
    src = 0
    while True:
        if text[src + 1] in ("r", "i", "l"):
            symbol, src = text[src:src + 2], src + 2
        else:
            symbol, src = text[src], src + 1
        out.append(vocab.get(symbol, unknown))
        if text[src] == "." or len(out) == pad_len - 1:
            out.append(vocab["."])
            return out


def _one_hot(smiles: Sequence[str]) -> np.ndarray:
    """fcd_torch's ChemNet input for canonical SMILES: (B, 350, 35) float32, one-hot / 35.

    Equal, element for element, to stacking ``fcd_torch.utils.SmilesDataset(smiles,
    canonize=False)[i]`` (a test checks this), but without allocating in Python per symbol.
    """
    from fcd_torch import utils

    vocab_list = utils.__dict__["__vocab"]
    vocab = {symbol: i for i, symbol in enumerate(vocab_list)}
    pad_len = utils.SmilesDataset._SmilesDataset__PAD_LEN
    out = np.zeros((len(smiles), pad_len, len(vocab_list)), dtype=np.float32)
    value = np.float32(1.0 / len(vocab_list))
    for b, s in enumerate(smiles):
        tokens = _token_indices(s, vocab, vocab["X"], pad_len)
        out[b, np.arange(len(tokens)), tokens] = value
    return out


def _fcd_canonical(smiles: Sequence[str]) -> list[str]:
    """Canonicalise as fcd_torch does (RDKit default canonical SMILES); ValueError on a bad one."""
    Chem = require_rdkit()
    out = []
    with quiet_rdkit():
        for s in smiles:
            mol = Chem.MolFromSmiles(s) if isinstance(s, str) and s else None
            if mol is None or mol.GetNumAtoms() == 0:
                raise ValueError(f"FCD needs valid SMILES; got {s!r} (filter invalid molecules first)")
            out.append(Chem.MolToSmiles(mol))
    return out


def _unique(items: Sequence[str]) -> tuple[list[str], np.ndarray]:
    """(distinct items in first-seen order, index of each item in that list)."""
    index: dict[str, int] = {}
    inverse = np.fromiter((index.setdefault(s, len(index)) for s in items), dtype=np.int64, count=len(items))
    return list(index), inverse


def chemnet_activations(smiles: Sequence[str], *, threads: int | None = 1, batch_size: int = 128,
                        deduplicate: bool = True) -> np.ndarray:
    """ChemNet penultimate-layer activations, (N, 512) float32, one row per input SMILES.

    Raises ValueError naming the first SMILES that RDKit cannot parse.  With
    ``deduplicate`` each distinct canonical SMILES runs through ChemNet once.
    """
    torch = require_torch()
    require_fcd_torch()
    if batch_size < 1:
        raise ValueError(f"batch_size must be positive, got {batch_size}")
    smiles = list(smiles)
    if deduplicate:
        # canonicalise each distinct string once, then run each distinct canonical SMILES once
        distinct_raw, raw_inverse = _unique(smiles)
        canonical = _fcd_canonical(distinct_raw)
        todo, canonical_inverse = _unique(canonical)
        inverse = canonical_inverse[raw_inverse]
    else:
        todo, inverse = _fcd_canonical(smiles), None
    model = _chemnet()
    chunks = []
    with _torch_threads(threads), torch.no_grad():
        for start in range(0, len(todo), batch_size):
            batch = torch.from_numpy(_one_hot(todo[start:start + batch_size]))
            chunks.append(model(batch.transpose(1, 2)).numpy())
    acts = np.concatenate(chunks) if chunks else np.zeros((0, 512), np.float32)
    return acts if inverse is None else acts[inverse]


def activation_statistics(activations: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean (D,) and unbiased covariance (D, D) of activations (N, D), in float64; N >= 2."""
    acts = np.asarray(activations, dtype=np.float64)
    if acts.ndim != 2 or acts.shape[0] < 2:
        raise ValueError(f"need at least 2 activation rows, got shape {acts.shape}")
    with _one_blas_thread():
        return acts.mean(axis=0), np.cov(acts, rowvar=False)


def _one_blas_thread() -> contextlib.AbstractContextManager:
    """NumPy's BLAS / LAPACK on one thread while FCD statistics are computed.

    These products are small (512 x 512), and OpenBLAS's worker threads spin: with the other
    core of a 2-core machine busy (a training run, or a second evaluation), a 512 x 512
    ``eigh`` took 3.9 s on two OpenBLAS threads and 0.04 s on one, and a 10,000 x 512
    covariance 0.25 s and 0.09 s.  Without threadpoolctl (a dependency of the ``chem``
    extra) the BLAS keeps its own thread count.
    """
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        return contextlib.nullcontext()
    return threadpool_limits(limits=1, user_api="blas")


def _sqrt_psd(sigma: np.ndarray) -> np.ndarray:
    w, v = np.linalg.eigh((sigma + sigma.T) / 2)
    return (v * np.sqrt(np.clip(w, 0.0, None))) @ v.T


def frechet_distance(mu1: np.ndarray, sigma1: np.ndarray, mu2: np.ndarray, sigma2: np.ndarray) -> float:
    """Fréchet distance between N(mu1, sigma1) and N(mu2, sigma2).

    ``|mu1 - mu2|^2 + tr(sigma1) + tr(sigma2) - 2 tr((sigma1 sigma2)^(1/2))``, where the last
    trace is computed as ``sum sqrt(eig(S1^(1/2) sigma2 S1^(1/2)))`` with symmetric
    eigendecompositions (the same eigenvalues as ``sigma1 sigma2``, but stable for
    singular covariances).  Tiny negative results from round-off are clipped to 0.
    """
    mu1, mu2 = np.asarray(mu1, np.float64), np.asarray(mu2, np.float64)
    sigma1, sigma2 = np.asarray(sigma1, np.float64), np.asarray(sigma2, np.float64)
    if mu1.shape != mu2.shape or mu1.ndim != 1 or sigma1.shape != sigma2.shape or sigma1.shape != mu1.shape * 2:
        raise ValueError(f"shape mismatch: mu {mu1.shape} / {mu2.shape}, sigma {sigma1.shape} / {sigma2.shape}")
    with _one_blas_thread():
        root1 = _sqrt_psd(sigma1)
        middle = root1 @ sigma2 @ root1
        eig = np.linalg.eigvalsh((middle + middle.T) / 2)
    tr_covmean = float(np.sqrt(np.clip(eig, 0.0, None)).sum())
    diff = mu1 - mu2
    value = float(diff @ diff + np.trace(sigma1) + np.trace(sigma2) - 2.0 * tr_covmean)
    return max(value, 0.0)


def _fingerprint(smiles: Sequence[str]) -> str:
    digest = hashlib.sha256()
    for s in smiles:
        digest.update(s.encode())
        digest.update(b"\n")
    return digest.hexdigest()


def reference_cache_path(smiles: Sequence[str], cache_dir: PathLike | None = None) -> Path:
    """A cache file for the reference statistics of ``smiles``: ``<cache>/fcd/ref-<digest>.npz``.

    The name is derived from the SMILES list, so different splits never share a file.
    """
    return resolve_cache_dir(cache_dir) / "fcd" / f"ref-{_fingerprint(list(smiles))[:20]}.npz"


@dataclass(frozen=True)
class FCDReference:
    """ChemNet statistics of a reference molecule set.

    Attributes: ``mu`` (512,) float64, ``sigma`` (512, 512) float64, ``n`` molecules,
    ``fingerprint`` SHA-256 of the SMILES list it was computed from (order matters).
    """

    mu: np.ndarray
    sigma: np.ndarray
    n: int
    fingerprint: str = ""

    @classmethod
    def from_smiles(cls, smiles: Sequence[str], cache_path: PathLike | None = None, *,
                    threads: int | None = 1, batch_size: int = 128) -> "FCDReference":
        """Statistics of ``smiles`` (all must be valid), read from / written to ``cache_path``.

        A cache file is used only if it was computed from exactly this SMILES list (same
        fingerprint); otherwise, or if it is damaged, it is recomputed and rewritten atomically
        (with a warning when the file was damaged or belonged to another list).
        """
        smiles = list(smiles)
        if len(smiles) < 2:
            raise ValueError(f"an FCD reference needs at least 2 molecules, got {len(smiles)}")
        fingerprint = _fingerprint(smiles)
        if cache_path is not None and Path(cache_path).exists():
            try:
                cached = cls.load(cache_path)
            except CorruptCacheError as exc:
                warnings.warn(f"{exc}; recomputing the FCD reference", RuntimeWarning, stacklevel=2)
            else:
                if cached.fingerprint == fingerprint:
                    return cached
                warnings.warn(f"FCD reference cache {cache_path} was computed from other molecules; "
                              "recomputing", RuntimeWarning, stacklevel=2)
        acts = chemnet_activations(smiles, threads=threads, batch_size=batch_size)
        mu, sigma = activation_statistics(acts)
        reference = cls(mu=mu, sigma=sigma, n=len(smiles), fingerprint=fingerprint)
        if cache_path is not None:
            reference.save(cache_path)
        return reference

    def save(self, path: PathLike) -> None:
        """Write atomically as a checksummed ``.npz``."""
        meta = {"format": _REFERENCE_FORMAT, "n": self.n, "fingerprint": self.fingerprint}
        write_npz(path, {"mu": self.mu, "sigma": self.sigma, "meta": np.array(json.dumps(meta))})

    @classmethod
    def load(cls, path: PathLike) -> "FCDReference":
        """Read a file written by :meth:`save`; CorruptCacheError if it is damaged."""
        arrays = read_npz(path)
        try:
            meta = json.loads(str(arrays["meta"]))
            mu, sigma = arrays["mu"], arrays["sigma"]
            if meta.get("format") != _REFERENCE_FORMAT or mu.ndim != 1 or sigma.shape != mu.shape * 2:
                raise ValueError("unexpected layout")
        except (KeyError, ValueError, TypeError) as exc:
            raise CorruptCacheError(f"FCD reference file {path} has an unexpected layout ({exc})") from exc
        return cls(mu=mu.astype(np.float64), sigma=sigma.astype(np.float64), n=int(meta["n"]),
                   fingerprint=str(meta["fingerprint"]))


def fcd(smiles: Sequence[str], reference: FCDReference, *, threads: int | None = 1,
        batch_size: int = 128) -> float:
    """FCD between ``smiles`` (>= 2 valid SMILES; duplicates count) and ``reference``."""
    smiles = list(smiles)
    if len(smiles) < 2:
        raise ValueError(f"FCD needs at least 2 molecules, got {len(smiles)}")
    mu, sigma = activation_statistics(chemnet_activations(smiles, threads=threads, batch_size=batch_size))
    return frechet_distance(mu, sigma, reference.mu, reference.sigma)
