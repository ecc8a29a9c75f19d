"""Tests of qboson.chem.chemnet: Fréchet distance, ChemNet input, equality with fcd_torch, cache."""

from __future__ import annotations

import sys
import warnings
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("rdkit")
pytest.importorskip("fcd_torch")
torch = pytest.importorskip("torch")
scipy_linalg = pytest.importorskip("scipy.linalg")

from qboson.chem import CorruptCacheError, FCDReference, evaluate_molecules, fcd, frechet_distance  # noqa: E402
from qboson.chem.chemnet import _one_hot, activation_statistics, chemnet_activations  # noqa: E402

SAMPLE = Path(__file__).parent / "data" / "qm9_sample.smi"


def _fixture() -> list[str]:
    return [s.strip() for s in SAMPLE.read_text().splitlines() if s.strip()]


# --------------------------------------------------------------------------- Fréchet distance


def test_frechet_distance_in_one_dimension() -> None:
    # N(m1, s1^2) vs N(m2, s2^2): (m1 - m2)^2 + (s1 - s2)^2
    got = frechet_distance(np.array([1.0]), np.array([[4.0]]), np.array([-0.5]), np.array([[0.25]]))
    assert got == pytest.approx(1.5**2 + (2.0 - 0.5) ** 2, rel=1e-12)


def test_frechet_distance_commuting_covariances() -> None:
    rng = np.random.default_rng(0)
    q, _ = np.linalg.qr(rng.normal(size=(6, 6)))
    a, b = rng.uniform(0.1, 3.0, 6), rng.uniform(0.0, 3.0, 6)
    mu1, mu2 = rng.normal(size=6), rng.normal(size=6)
    expected = np.sum((mu1 - mu2) ** 2) + np.sum((np.sqrt(a) - np.sqrt(b)) ** 2)
    got = frechet_distance(mu1, q @ np.diag(a) @ q.T, mu2, q @ np.diag(b) @ q.T)
    assert got == pytest.approx(expected, rel=1e-10)


def test_frechet_distance_matches_scipy_sqrtm_on_random_covariances() -> None:
    rng = np.random.default_rng(1)
    x, y = rng.normal(size=(40, 12)), rng.normal(size=(30, 12)) @ rng.normal(size=(12, 12))
    s1, s2 = np.cov(x, rowvar=False), np.cov(y, rowvar=False)
    mu1, mu2 = x.mean(0), y.mean(0)
    covmean = scipy_linalg.sqrtm(s1 @ s2)
    expected = np.sum((mu1 - mu2) ** 2) + np.trace(s1) + np.trace(s2) - 2 * np.trace(covmean).real
    assert frechet_distance(mu1, s1, mu2, s2) == pytest.approx(expected, rel=1e-9)


def test_frechet_distance_of_singular_covariances_is_finite_and_zero_for_equal() -> None:
    rng = np.random.default_rng(2)
    x = rng.normal(size=(5, 20))  # 5 samples in 20 dimensions: rank-4 covariance
    mu, sigma = activation_statistics(x)
    assert np.linalg.matrix_rank(sigma) == 4
    assert frechet_distance(mu, sigma, mu, sigma) == pytest.approx(0.0, abs=1e-9)
    assert np.isfinite(frechet_distance(mu, sigma, mu + 1.0, np.eye(20)))
    with pytest.raises(ValueError, match="shape"):
        frechet_distance(mu, sigma, mu[:3], sigma)
    with pytest.raises(ValueError, match="at least 2"):
        activation_statistics(x[:1])


# --------------------------------------------------------------------------- ChemNet and fcd_torch


def test_one_hot_equals_fcd_torch_input() -> None:
    from fcd_torch.utils import SmilesDataset

    smiles = _fixture()[:50] + ["ClC(Br)[Si]", "CC.O", "C[NH3+]", "C" * 400, "Z"]
    dataset = SmilesDataset(smiles, canonize=False)
    expected = np.stack([dataset[i] for i in range(len(smiles))]).astype(np.float32)
    np.testing.assert_array_equal(_one_hot(smiles), expected)


def _sqrtm_trace_distance(mu1, s1, mu2, s2) -> float:
    """The Fréchet distance with SciPy's general matrix square root (not our eigen route)."""
    covmean = scipy_linalg.sqrtm(s1 @ s2)
    covmean = covmean[0] if isinstance(covmean, tuple) else covmean  # older SciPy returned (root, error)
    diff = mu1 - mu2
    return float(diff @ diff + np.trace(s1) + np.trace(s2) - 2 * np.trace(covmean.real))


def test_fcd_equals_fcd_torch() -> None:
    """fcd_torch's own ChemNet statistics (``FCD.precalc``), whatever SciPy is installed: ``FCD.__call__``
    passes ``sqrtm(disp=...)``, which SciPy 1.18 removed, so the distance is taken with ``sqrtm`` here."""
    fcd_torch = pytest.importorskip("fcd_torch")
    smiles = _fixture()
    ref, gen = smiles[:120], smiles[120:240]
    gen = gen + gen[:30]  # duplicates, as a generator produces them: ours runs each once
    threads_before = torch.get_num_threads()
    reference = FCDReference.from_smiles(ref)
    ours = fcd(gen, reference)
    assert torch.get_num_threads() == threads_before
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        torch.set_num_threads(1)  # as fast as it gets on a busy 2-core machine
        try:
            model = fcd_torch.FCD(device="cpu", n_jobs=1, batch_size=64)
            their_ref, their_gen = model.precalc(ref), model.precalc(gen)
        finally:
            torch.set_num_threads(threads_before)
    np.testing.assert_allclose(reference.mu, their_ref["mu"], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(reference.sigma, their_ref["sigma"], rtol=1e-4, atol=1e-6)
    theirs = _sqrtm_trace_distance(their_gen["mu"], their_gen["sigma"], their_ref["mu"], their_ref["sigma"])
    assert 0.5 < theirs < 50  # two different molecule sets, not a degenerate case
    # measured: 1.4e-7 relative (float32 ChemNet activations, float64 statistics on both sides)
    assert ours == pytest.approx(theirs, rel=1e-6)
    assert reference.n == 120 and reference.mu.shape == (512,) and reference.sigma.shape == (512, 512)


def test_activations_do_not_depend_on_batching_or_deduplication() -> None:
    smiles = _fixture()[:30]
    a = chemnet_activations(smiles + smiles[:5], batch_size=7)
    b = chemnet_activations(smiles + smiles[:5], batch_size=128, deduplicate=False)
    assert a.shape == (35, 512) and a.dtype == np.float32
    np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(a[30:], a[:5])


def test_fcd_rejects_invalid_input() -> None:
    reference = FCDReference(mu=np.zeros(512), sigma=np.eye(512), n=2)
    with pytest.raises(ValueError, match="'C1CC'"):
        fcd(["CCO", "C1CC"], reference)
    with pytest.raises(ValueError, match="at least 2"):
        fcd(["CCO"], reference)
    with pytest.raises(ValueError, match="threads"):
        fcd(["CCO", "CCN"], reference, threads=0)


def test_evaluate_molecules_with_a_real_reference() -> None:
    smiles = _fixture()
    reference = FCDReference.from_smiles(smiles[:100])
    generated = smiles[100:160] + [None, "*C", "CC.O", "nonsense"]
    result = evaluate_molecules(generated, train_smiles=set(), fcd_reference=reference, n_fcd=50)
    assert result["n_fcd"] == 50 and result["valid"] == 60 and result["valid_loose"] == 62
    assert result["fcd"] == pytest.approx(fcd(smiles[100:150], reference), rel=1e-9)
    doubled = evaluate_molecules(smiles[100:130] * 2, train_smiles=set(), fcd_reference=reference)
    assert doubled["n_fcd"] == 60 and doubled["n_fcd_unique"] == 30
    assert doubled["fcd_unique"] == pytest.approx(fcd(smiles[100:130], reference), rel=1e-9)


# --------------------------------------------------------------------------- cached reference


def test_reference_cache_round_trip_and_reuse(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import qboson.chem.chemnet as fcd_module
    smiles = _fixture()[:40]
    path = tmp_path / "ref" / "qm9-test.npz"
    first = FCDReference.from_smiles(smiles, cache_path=path)
    assert path.is_file() and not list(path.parent.glob("*.tmp"))

    def fail(*args, **kwargs):
        raise AssertionError("ChemNet should not run: the cache matches")

    monkeypatch.setattr(fcd_module, "chemnet_activations", fail)
    again = FCDReference.from_smiles(smiles, cache_path=path)
    np.testing.assert_array_equal(first.sigma, again.sigma)
    assert again.n == 40 and again.fingerprint == first.fingerprint
    loaded = FCDReference.load(path)
    np.testing.assert_array_equal(first.mu, loaded.mu)


def test_reference_cache_path_depends_on_the_molecules(tmp_path: Path) -> None:
    from qboson.chem import reference_cache_path

    smiles = _fixture()
    a = reference_cache_path(smiles[:10], cache_dir=tmp_path)
    assert a == reference_cache_path(list(smiles[:10]), cache_dir=tmp_path)
    assert a.parent == tmp_path / "fcd" and a.suffix == ".npz"
    assert a != reference_cache_path(smiles[1:11], cache_dir=tmp_path)


def test_reference_cache_for_other_molecules_or_damaged_is_recomputed(tmp_path: Path) -> None:
    smiles = _fixture()[:30]
    path = tmp_path / "ref.npz"
    FCDReference.from_smiles(smiles[:20], cache_path=path)
    with pytest.warns(RuntimeWarning, match="other molecules"):
        ref = FCDReference.from_smiles(smiles, cache_path=path)
    assert ref.n == 30 and FCDReference.load(path).n == 30

    path.write_bytes(path.read_bytes()[:1000])
    with pytest.raises(CorruptCacheError, match="ref.npz"):
        FCDReference.load(path)
    with pytest.warns(RuntimeWarning, match="recomputing"):
        again = FCDReference.from_smiles(smiles, cache_path=path)
    np.testing.assert_allclose(again.mu, ref.mu, rtol=1e-6)
    assert FCDReference.load(path).n == 30


def test_without_fcd_torch(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "fcd_torch", None)
    monkeypatch.setitem(sys.modules, "fcd_torch.utils", None)
    with pytest.raises(ImportError, match=r"qboson\[chem\]"):
        chemnet_activations(["CCO", "CCN"])


def test_fcd_statistics_run_on_one_blas_thread(monkeypatch: pytest.MonkeyPatch) -> None:
    # regression: on a busy 2-core machine two OpenBLAS threads made a 512 x 512 eigh 100x slower
    threadpoolctl = pytest.importorskip("threadpoolctl")
    if not threadpoolctl.threadpool_info() or not any(p["user_api"] == "blas" for p in threadpoolctl.threadpool_info()):
        pytest.skip("no BLAS thread pool that threadpoolctl can see")
    seen: list[int] = []
    eigh, cov = np.linalg.eigh, np.cov

    def blas_threads() -> int:
        return max(p["num_threads"] for p in threadpoolctl.threadpool_info() if p["user_api"] == "blas")

    monkeypatch.setattr(np.linalg, "eigh", lambda *a, **k: (seen.append(blas_threads()), eigh(*a, **k))[1])
    monkeypatch.setattr(np, "cov", lambda *a, **k: (seen.append(blas_threads()), cov(*a, **k))[1])
    rng = np.random.default_rng(0)
    with threadpoolctl.threadpool_limits(limits=2, user_api="blas"):
        mu1, s1 = activation_statistics(rng.normal(size=(50, 8)))
        mu2, s2 = activation_statistics(rng.normal(size=(50, 8)) + 1)
        value = frechet_distance(mu1, s1, mu2, s2)
        assert blas_threads() == 2  # restored afterwards
    assert seen == [1, 1, 1] and value > 0


def test_without_threadpoolctl(monkeypatch: pytest.MonkeyPatch) -> None:
    rng = np.random.default_rng(1)
    a, b = rng.normal(size=(40, 6)), rng.normal(size=(40, 6)) * 2
    expected = frechet_distance(*activation_statistics(a), *activation_statistics(b))
    monkeypatch.setitem(sys.modules, "threadpoolctl", None)  # import fails
    assert frechet_distance(*activation_statistics(a), *activation_statistics(b)) == expected
