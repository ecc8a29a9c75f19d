"""PyTorch glue: :class:`LatentDataset`, an ``IterableDataset`` of latent vectors.

PyTorch is an optional dependency of qboson (``pip install qboson[torch]``); this module is
the only one that imports it, and nothing else in qboson imports this module.

    >>> from torch.utils.data import DataLoader
    >>> from qboson.latent import make
    >>> from qboson.torch import LatentDataset
    >>> data = LatentDataset(make("quantum", dim=16, seed=0), batch_size=256, length=256 * 100)
    >>> for z in DataLoader(data, batch_size=None, num_workers=2): ...   # z: (256, 16) float32

Sharding: an epoch is cut into *units* (one batch each, or ``prefetch`` consecutive samples
when ``batch_size`` is None); unit ``u`` goes to DDP rank ``u mod world_size`` and, within the
rank, to DataLoader worker ``(u // world_size) mod num_workers``.  Every rank yields the same
number of items (as ``DistributedSampler`` does), or collective operations would hang:

* batches (``world_size > 1``): when the batches do not divide evenly among the ranks, the
  epoch is cut into ``ceil(batches / world_size) * world_size`` batches of near-equal size
  instead, so every row is still yielded exactly once (only if there are fewer rows than
  batches are some rows repeated, from the start of the epoch); with ``drop_last`` the
  batches left over after equal shares are dropped instead;
* single rows (``world_size > 1``): every rank yields ``ceil(length / world_size)`` rows,
  the missing ones repeated from the start of the epoch (``drop_last``: ``length // world_size``).

With one rank nothing is padded or dropped beyond ``drop_last``.  The union over workers is
independent of the number of workers.
"""

from __future__ import annotations

from typing import Iterator, Optional, Union

import numpy as np

try:
    import torch
    from torch.utils.data import IterableDataset, get_worker_info
except ImportError as exc:  # pragma: no cover - exercised by test_without_torch
    raise ImportError(
        "qboson.torch needs PyTorch, an optional dependency: pip install qboson[torch] "
        "(CPU build: pip install torch==2.13.0)"
    ) from exc

from ._validation import as_int
from .latent.bank import Bank
from .latent.base import Latent, SeedTemplate

__all__ = ["LatentDataset"]


class LatentDataset(IterableDataset):
    """Latent vectors from a live :class:`~qboson.latent.Latent` or a :class:`~qboson.latent.Bank`.

    Parameters
    ----------
    source : Latent or Bank
        Live latents draw fresh rows (epoch ``e`` reads its own stream, seeded by
        ``(latent.seed, seed, e)``); banks serve their stored rows, normalised as recorded.
    batch_size : int, optional
        Yield float32 tensors of shape (batch_size, dim) (use ``DataLoader(batch_size=None)``);
        ``None`` yields single rows of shape (dim,).
    shuffle : bool
        Banks only: visit the rows in a random order, reshuffled every epoch from ``(seed, epoch)``.
        (Rows of a live latent are independent draws already.)
    seed : int
        Seed of the shuffling and of the live streams.
    infinite : bool
        Never stop: banks cycle through epochs ``epoch, epoch + 1, ...``; live latents draw an
        endless stream.
    length : int, optional
        Rows per epoch: required for a finite live latent; for a bank, at most ``len(bank)``
        (default all rows).
    drop_last : bool
        Drop the last, incomplete batch of an epoch (and, with several ranks, whatever does not
        divide evenly among them).
    rank, world_size : int
        Shard across distributed (DDP) processes as well as DataLoader workers; every rank yields
        the same number of items per epoch (see the module docstring for the padding).
    prefetch : int
        Rows fetched together when yielding single rows.
    threads : int, optional
        Sampler threads of a live photon latent.  Default: 1 inside DataLoader workers
        (they already run in parallel), the latent's own setting in the main process.

    Notes
    -----
    Call :meth:`set_epoch` before each epoch (as with ``DistributedSampler``).  With
    ``persistent_workers=True`` the workers keep the epoch they started with.
    """

    def __init__(
        self,
        source: Union[Latent, Bank],
        *,
        batch_size: Optional[int] = None,
        shuffle: bool = False,
        seed: int = 0,
        infinite: bool = False,
        length: Optional[int] = None,
        drop_last: bool = False,
        rank: int = 0,
        world_size: int = 1,
        prefetch: int = 256,
        threads: Optional[int] = None,
    ) -> None:
        super().__init__()
        if not isinstance(source, (Latent, Bank)):
            raise TypeError(f"source must be a qboson Latent or Bank, got {type(source).__name__}")
        self.source = source
        self.batch_size = None if batch_size is None else as_int(batch_size, "batch_size", minimum=1)
        self.shuffle = bool(shuffle)
        self.seed = as_int(seed, "seed", minimum=0)
        self.infinite = bool(infinite)
        self.drop_last = bool(drop_last)
        self.world_size = as_int(world_size, "world_size", minimum=1)
        self.rank = as_int(rank, "rank", minimum=0)
        if self.rank >= self.world_size:
            raise ValueError(f"rank={rank} must be < world_size={world_size}")
        self.prefetch = as_int(prefetch, "prefetch", minimum=1)
        self.threads = None if threads is None else as_int(threads, "threads", minimum=1)
        self.epoch = 0
        if isinstance(source, Bank):
            n = len(source)
            self.length = n if length is None else as_int(length, "length", minimum=1)
            if self.length > n:
                raise ValueError(f"length={self.length} exceeds the bank's {n} rows")
        else:
            if length is None and not infinite:
                raise ValueError("a finite LatentDataset over a live latent needs length= (rows per epoch), or infinite=True")
            self.length = None if length is None else as_int(length, "length", minimum=1)
        if self.batch_size is not None and self.drop_last and self.length is not None and self.length < self.batch_size:
            raise ValueError(f"length={self.length} < batch_size={self.batch_size} with drop_last: epochs would be empty")
        if self.length is not None and self._units_per_epoch() == 0:
            raise ValueError(
                f"length={self.length} with drop_last leaves no full {'batch' if self.batch_size else 'row'} for each of "
                f"world_size={self.world_size} ranks: epochs would be empty"
            )

    @property
    def dim(self) -> int:
        return self.source.dim

    def set_epoch(self, epoch: int) -> None:
        """Select the epoch: the bank's shuffle order or the live latent's stream."""
        self.epoch = as_int(epoch, "epoch", minimum=0)

    # -- sharding ------------------------------------------------------------------------------
    @property
    def _unit(self) -> int:
        return self.batch_size or self.prefetch

    def _units_per_epoch(self) -> int:
        """Units in one epoch, over all ranks: a multiple of ``world_size`` when there are several."""
        if self.length is None:
            raise TypeError("an infinite LatentDataset over a live latent has no length")
        n, ws, unit = self.length, self.world_size, self._unit
        if self.batch_size is None:
            if ws == 1:
                return -(-n // unit)
            per_rank = n // ws if self.drop_last else -(-n // ws)
            return -(-per_rank // unit) * ws
        units = n // unit if self.drop_last else -(-n // unit)
        if ws == 1:
            return units
        return (units // ws) * ws if self.drop_last else -(-units // ws) * ws

    def _unit_range(self, u: int) -> tuple[int, int]:
        """Positions ``[a, b)`` of unit ``u``; position ``p`` is row ``p mod length`` of the epoch."""
        unit = self._unit
        if self.length is None or self.world_size == 1:
            a = u * unit
            return a, (a + unit if self.length is None else min(a + unit, self.length))
        n, ws = self.length, self.world_size
        total = self._units_per_epoch()
        if self.batch_size is None:  # rounds of one unit per rank, all of one size
            per_rank = n // ws if self.drop_last else -(-n // ws)
            j, i = divmod(u, ws)
            size = min(unit, per_rank - j * unit)
            a = ws * j * unit + i * size
            return a, a + size
        natural = n // unit if self.drop_last else -(-n // unit)
        if self.drop_last or natural == total:
            return u * unit, min((u + 1) * unit, n)
        span = max(n, total)  # near-equal batches; positions past the rows wrap round to the start
        return u * span // total, (u + 1) * span // total

    def _shard(self) -> tuple[int, int, bool]:
        info = get_worker_info()
        wid, nw = (info.id, info.num_workers) if info is not None else (0, 1)
        # rank-major within each stride: the units of one rank are spread over its workers
        return self.rank + self.world_size * wid, self.world_size * nw, info is not None

    def __len__(self) -> int:
        """Items (batches, or rows) this rank yields per epoch, summed over its workers."""
        if self.infinite:
            raise TypeError("an infinite LatentDataset has no length")
        mine = range(self.rank, self._units_per_epoch(), self.world_size)
        if self.batch_size is not None:
            return len(mine)
        return sum(b - a for a, b in map(self._unit_range, mine))

    # -- iteration -----------------------------------------------------------------------------
    def _order(self, epoch: int) -> Optional[np.ndarray]:
        if not self.shuffle:
            return None
        rng = np.random.default_rng(np.random.SeedSequence(self.seed, spawn_key=(epoch,)))
        return rng.permutation(len(self.source))[: self.length]

    def _positions(self, epoch: int, order: Optional[np.ndarray], a: int, b: int, threads: Optional[int]) -> np.ndarray:
        """Rows at positions ``[a, b)`` of the epoch, wrapping round to its start past ``length``."""
        n = self.length
        if n is None or b <= n:
            return self._rows(epoch, order, a, b, threads)
        pieces, p = [], a
        while p < b:
            start = p % n
            stop = min(n, start + (b - p))
            pieces.append(self._rows(epoch, order, start, stop, threads))
            p += stop - start
        return np.concatenate(pieces)

    def _rows(self, epoch: int, order: Optional[np.ndarray], a: int, b: int, threads: Optional[int]) -> np.ndarray:
        if isinstance(self.source, Bank):
            return self.source.rows(a, b) if order is None else self.source.take(order[a:b])
        stream = SeedTemplate((self.source.seed, self.seed), (epoch,))
        return self.source.normalise(self.source.raw_at(a, b, stream, threads=threads))

    def _epoch(self, epoch: int, shard: int, nshards: int, threads: Optional[int]) -> Iterator["torch.Tensor"]:
        order = self._order(epoch) if isinstance(self.source, Bank) else None
        u = shard
        while self.length is None or u < self._units_per_epoch():
            a, b = self._unit_range(u)
            rows = self._positions(epoch, order, a, b, threads)
            if self.batch_size is not None:
                yield torch.from_numpy(rows)
            else:
                yield from (torch.from_numpy(r) for r in rows)
            u += nshards

    def __iter__(self) -> Iterator["torch.Tensor"]:
        shard, nshards, in_worker = self._shard()
        threads = self.threads if self.threads is not None or not in_worker else 1
        epoch = self.epoch
        while True:
            yield from self._epoch(epoch, shard, nshards, threads)
            if not self.infinite:
                return
            epoch += 1

    def __repr__(self) -> str:
        kind = "bank" if isinstance(self.source, Bank) else "live"
        return (
            f"LatentDataset({kind} {self.source.name}, dim={self.dim}, batch_size={self.batch_size}, "
            f"length={self.length}, shuffle={self.shuffle}, infinite={self.infinite}, epoch={self.epoch})"
        )
