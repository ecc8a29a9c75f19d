"""qboson.torch.LatentDataset: shapes, sharding across DataLoader workers and ranks, epochs."""

import importlib
import itertools
import sys

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytestmark = pytest.mark.filterwarnings("ignore:This DataLoader will create:UserWarning")
from torch.utils.data import DataLoader  # noqa: E402

from qboson.latent import generate_bank, make  # noqa: E402
from qboson.torch import LatentDataset  # noqa: E402


@pytest.fixture(scope="module")
def bank(tmp_path_factory):
    # Gaussian rows are all distinct, so every yielded row names its bank index.
    return generate_bank(make("gaussian", dim=5, seed=0), 103, tmp_path_factory.mktemp("b") / "bank")


def _indices(bank, rows):
    lookup = {bank.rows(i, i + 1).tobytes(): i for i in range(len(bank))}
    return [lookup[r.numpy().tobytes()] for r in rows]


@pytest.mark.parametrize("workers", [0, 1, 3])
@pytest.mark.parametrize("batch_size", [None, 8])
def test_bank_epoch_covers_every_index_once(bank, workers, batch_size):
    ds = LatentDataset(bank, batch_size=batch_size, shuffle=True, seed=1)
    loader = DataLoader(ds, batch_size=None if batch_size else 10, num_workers=workers)
    rows = torch.cat([b.reshape(-1, 5) for b in loader])
    assert rows.dtype == torch.float32
    idx = _indices(bank, rows)
    assert sorted(idx) == list(range(len(bank)))
    assert idx != sorted(idx)  # shuffled


@pytest.mark.parametrize("workers", [0, 1, 3])
def test_live_latent_epoch_is_the_same_rows_for_any_worker_count(workers):
    z = make("quantum", dim=6, seed=2)
    ds = LatentDataset(z, batch_size=16, length=200)
    rows = torch.cat(list(DataLoader(ds, batch_size=None, num_workers=workers))).numpy()
    assert rows.shape == (200, 6)
    single = torch.cat(list(ds)).numpy()
    key = lambda a: sorted(map(bytes, a))  # noqa: E731
    assert key(rows) == key(single)
    # exactly the rows of one stream, normalised as the latent says
    from qboson.latent.base import SeedTemplate

    expected = z.normalise(z.raw_at(0, 200, SeedTemplate((z.seed, 0), (0,))))
    np.testing.assert_array_equal(single, expected)


def test_epochs_and_seeds(bank):
    ds = LatentDataset(bank, batch_size=10, shuffle=True, seed=3)
    first = torch.cat(list(ds))
    assert torch.equal(first, torch.cat(list(ds)))  # same epoch, same order
    ds.set_epoch(1)
    second = torch.cat(list(ds))
    assert not torch.equal(first, second)
    assert sorted(_indices(bank, second)) == list(range(len(bank)))
    plain = torch.cat(list(LatentDataset(bank, batch_size=10)))
    assert _indices(bank, plain) == list(range(len(bank)))
    z = make("gaussian", dim=3, seed=0)
    live = LatentDataset(z, batch_size=4, length=8)
    a = torch.cat(list(live))
    live.set_epoch(5)
    assert not torch.equal(a, torch.cat(list(live)))


def test_shapes_len_and_drop_last(bank):
    ds = LatentDataset(bank, batch_size=10, drop_last=True)
    batches = list(ds)
    assert len(ds) == len(batches) == 10 and all(b.shape == (10, 5) for b in batches)
    ds = LatentDataset(bank, batch_size=10)
    assert len(ds) == 11 and list(ds)[-1].shape == (3, 5)
    single = LatentDataset(bank)
    items = list(single)
    assert len(single) == len(items) == 103 and items[0].shape == (5,)


def test_ranks_partition_the_epoch(bank):
    seen = []
    for rank in range(3):
        ds = LatentDataset(bank, batch_size=4, shuffle=True, rank=rank, world_size=3)
        got = list(ds)
        assert len(ds) == len(got)
        seen += _indices(bank, torch.cat(got))
    assert sorted(seen) == list(range(len(bank)))


def test_infinite(bank):
    ds = LatentDataset(bank, batch_size=50, shuffle=True, infinite=True)
    batches = list(itertools.islice(iter(ds), 6))  # 3 batches per epoch (50, 50, 3)
    idx = _indices(bank, torch.cat(batches))
    assert len(idx) == 206 and sorted(idx) == sorted(2 * list(range(103)))
    live = LatentDataset(make("bernoulli", dim=4, seed=0), batch_size=7, infinite=True)
    got = list(itertools.islice(iter(live), 20))
    assert len(got) == 20 and got[0].shape == (7, 4)
    with pytest.raises(TypeError):
        len(live)


def test_bad_arguments(bank):
    with pytest.raises(ValueError, match="length"):
        LatentDataset(make("gaussian", dim=3))
    with pytest.raises(TypeError, match="Latent or Bank"):
        LatentDataset(np.zeros((3, 3)))
    with pytest.raises(ValueError, match="rank"):
        LatentDataset(bank, rank=2, world_size=2)
    with pytest.raises(ValueError, match="exceeds"):
        LatentDataset(bank, length=1000)
    with pytest.raises(ValueError, match="batch_size"):
        LatentDataset(bank, batch_size=0)


def test_without_torch(monkeypatch):
    monkeypatch.setitem(sys.modules, "torch", None)
    monkeypatch.delitem(sys.modules, "qboson.torch", raising=False)
    with pytest.raises(ImportError, match=r"qboson\[torch\]"):
        importlib.import_module("qboson.torch")
    z = make("quantum", dim=4, seed=0)  # the rest of qboson does not need torch
    assert z.sample(3).shape == (3, 4)


@pytest.fixture(scope="module")
def bank1000(tmp_path_factory):
    return generate_bank(make("gaussian", dim=3, seed=1), 1000, tmp_path_factory.mktemp("b") / "bank")


def test_ranks_get_equal_batch_counts_with_workers(bank1000):
    """The DDP hang of issue #12: 2 ranks x 2 DataLoader workers over 10 batches gave 6 and 4."""
    seen = []
    for rank in range(2):
        ds = LatentDataset(bank1000, batch_size=100, rank=rank, world_size=2)
        got = list(DataLoader(ds, batch_size=None, num_workers=2))
        assert len(got) == len(ds) == 5
        seen += _indices(bank1000, torch.cat(got))
    assert sorted(seen) == list(range(1000))


def _fake_workers(monkeypatch, wid, nw):
    import types

    import qboson.torch as qt

    monkeypatch.setattr(qt, "get_worker_info", lambda: types.SimpleNamespace(id=wid, num_workers=nw))


@pytest.mark.parametrize("length,batch_size,world_size,workers", [
    (103, 4, 3, 2), (103, 10, 2, 3), (100, 10, 3, 2), (10, 1, 3, 2), (2, 5, 3, 1), (103, None, 3, 2),
    (5, None, 4, 3),
])
def test_every_rank_yields_len_items_and_the_same_count(bank, monkeypatch, length, batch_size, world_size, workers):
    counts, rows, seen = [], [], []
    for rank in range(world_size):
        mine = []
        for wid in range(workers):
            _fake_workers(monkeypatch, wid, workers)
            ds = LatentDataset(bank, batch_size=batch_size, shuffle=True, seed=3, rank=rank, world_size=world_size,
                               length=length, prefetch=4)
            mine += list(ds)
        monkeypatch.undo()
        assert len(mine) == len(ds)
        counts.append(len(mine))
        rows.append(sum(len(x) for x in mine) if batch_size else len(mine))
        seen += _indices(bank, torch.cat(mine) if batch_size else torch.stack(mine))
    assert len(set(counts)) == 1  # equal items per rank: DDP collectives stay in step
    if batch_size is None:
        assert counts[0] == -(-length // world_size)
    order = set(np.random.default_rng(np.random.SeedSequence(3, spawn_key=(0,))).permutation(len(bank))[:length])
    assert set(seen) == order  # every row of the epoch, repeated only where padding is unavoidable:
    total = counts[0] * world_size  # batches, or rows, over all ranks
    if batch_size is None or length < total:
        assert len(seen) == total  # rows per rank padded / one-row batches
    else:
        assert sorted(seen) == sorted(order)  # batches of near-equal size, each row once


def test_drop_last_with_ranks_drops_the_uneven_rest(bank):
    got = [list(LatentDataset(bank, batch_size=10, drop_last=True, rank=r, world_size=3)) for r in range(3)]
    assert [len(g) for g in got] == [3, 3, 3] and all(b.shape == (10, 5) for g in got for b in g)
    seen = sorted(i for g in got for i in _indices(bank, torch.cat(g)))
    assert seen == list(range(90))
    rows = [list(LatentDataset(bank, drop_last=True, rank=r, world_size=2, prefetch=8)) for r in range(2)]
    assert [len(r) for r in rows] == [51, 51]
    with pytest.raises(ValueError, match="empty"):
        LatentDataset(bank, batch_size=50, drop_last=True, world_size=3)


def test_live_latent_padding_repeats_rows_of_the_same_epoch():
    live = make("gaussian", dim=2, seed=0)
    epoch = torch.stack(list(LatentDataset(live, length=5))).numpy()
    per_rank = [torch.stack(list(LatentDataset(live, length=5, rank=r, world_size=4, prefetch=1))).numpy()
                for r in range(4)]
    assert [len(p) for p in per_rank] == [2, 2, 2, 2]
    got = np.concatenate(per_rank)
    assert {r.tobytes() for r in got} == {r.tobytes() for r in epoch}
