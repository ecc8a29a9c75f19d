"""Dask bank generation: byte-identical to local generation, robust to failing tasks and dying
workers, resumable.  Uses one LocalCluster(n_workers=2, processes=True) for the module."""

import os
import signal
import sys
import uuid
from pathlib import Path

import numpy as np
import pytest

distributed = pytest.importorskip("distributed")
import cloudpickle  # noqa: E402  (comes with distributed)

import qboson  # noqa: E402
from qboson.distributed import generate_bank  # noqa: E402
from qboson.latent import Bank, make  # noqa: E402
from qboson.latent import generate_bank as local_generate_bank  # noqa: E402
from qboson.latent.photonic import QuantumLatent  # noqa: E402

# The fault-injecting latent below must reach the worker processes by value.
cloudpickle.register_pickle_by_value(sys.modules[__name__])


class FaultyLatent(QuantumLatent):
    """A quantum latent that logs every chunk it computes (one file per call, any process) and
    can fail: ``mode="raise_once"`` raises once at ``fault_at``; ``"kill_once"`` kills its worker
    process there once; ``"raise_always"`` raises for every chunk at or after ``fault_at``."""

    log_dir = None
    fault_at = None
    mode = None

    def _draw(self, start, stop, seed, threads):
        log = Path(self.log_dir)
        (log / f"call-{start}-{uuid.uuid4().hex}").touch()
        if self.fault_at is not None:
            marker = log / f"fault-{start}"
            if self.mode == "raise_always" and start >= self.fault_at:
                raise RuntimeError(f"injected failure at {start}")
            if start == self.fault_at and not marker.exists():
                marker.touch()
                if self.mode == "raise_once":
                    raise RuntimeError(f"injected failure at {start}")
                if self.mode == "kill_once":
                    os.kill(os.getpid(), signal.SIGKILL)
        return super()._draw(start, stop, seed, threads)


def faulty(tmp_path, mode=None, fault_at=None):
    z = FaultyLatent(8, seed=5)
    z.log_dir, z.mode, z.fault_at = str(tmp_path / f"log-{uuid.uuid4().hex[:6]}"), mode, fault_at
    Path(z.log_dir).mkdir()
    return z


def calls(z):
    return sorted(int(p.name.split("-")[1]) for p in Path(z.log_dir).glob("call-*"))


@pytest.fixture(scope="module")
def client():
    with distributed.LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1", dashboard_address=None,
    ) as cluster, distributed.Client(cluster) as c:
        yield c


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """The local bank every distributed run must reproduce byte for byte."""
    return local_generate_bank(make("quantum", dim=8, seed=5), 1000, tmp_path_factory.mktemp("ref") / "bank")


def _same_bytes(a: Bank, b: Bank) -> bool:
    return a._data_path.read_bytes() == b._data_path.read_bytes() and a.sha256 == b.sha256


@pytest.mark.parametrize("chunk_size", [64, 333])
def test_byte_identical_to_local(client, reference, tmp_path, chunk_size):
    bank = generate_bank(make("quantum", dim=8, seed=5), 1000, tmp_path / "b", client, chunk_size, progress=False)
    assert _same_bytes(bank, reference)
    assert bank.generation["chunks_computed"] == -(-1000 // chunk_size)
    np.testing.assert_array_equal(bank.raw, qboson.sample(4, 8, 1000, seed=5))
    assert sorted(p.name for p in (tmp_path / "b").iterdir()) == ["bank.json", "samples.npy"]


def test_spec_dict_and_scheduler_address(client, reference, tmp_path):
    spec = {"name": "quantum", "dim": 8, "seed": 5}
    bank = generate_bank(spec, 1000, tmp_path / "b", client.scheduler.address, 250, progress=False)
    assert _same_bytes(bank, reference)


def test_task_that_raises_once_is_retried(client, reference, tmp_path):
    z = faulty(tmp_path, "raise_once", fault_at=200)
    bank = generate_bank(z, 1000, tmp_path / "b", client, 100, progress=False)
    assert _same_bytes(bank, reference)
    assert calls(z).count(200) == 2


def test_killed_worker_still_gives_the_identical_bank(client, reference, tmp_path):
    z = faulty(tmp_path, "kill_once", fault_at=300)
    bank = generate_bank(z, 1000, tmp_path / "b", client, 100, progress=False)
    assert _same_bytes(bank, reference)
    assert calls(z).count(300) == 2  # killed once, rerun on a live worker
    client.wait_for_workers(2, timeout=60)  # the nanny restarts the killed worker


def test_resume_computes_only_missing_chunks(client, reference, tmp_path):
    broken = faulty(tmp_path, "raise_always", fault_at=600)
    with pytest.raises(RuntimeError, match="rerun"):
        generate_bank(broken, 1000, tmp_path / "b", client, 100, retries=0, progress=False)
    done = sorted(p.name for p in (tmp_path / "b" / "chunks").glob("*.npy"))
    assert len(done) == 6  # chunks 0-600 finished and were kept
    fixed = faulty(tmp_path)
    bank = generate_bank(fixed, 1000, tmp_path / "b", client, progress=False)
    assert calls(fixed) == [600, 700, 800, 900]  # one task per missing chunk, nothing else
    assert bank.generation["chunks_reused"] == 6 and bank.generation["chunks_computed"] == 4
    assert _same_bytes(bank, reference)


def test_cli_with_scheduler(client, reference, tmp_path, capsys):
    from qboson.cli import main

    out = tmp_path / "b"
    rc = main(["sample", "--kind", "quantum", "--n", "4", "--m", "8", "--shots", "1000", "--seed", "5",
               "--out", str(out), "--scheduler", client.scheduler.address, "--chunk-size", "400", "--quiet"])
    assert rc == 0
    assert _same_bytes(Bank(out), reference)


def test_without_dask(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "distributed", None)
    with pytest.raises(ImportError, match=r"qboson\[dist\]"):
        generate_bank(make("gaussian", dim=2, seed=0), 10, tmp_path / "b")


def test_cli_starts_a_local_cluster(reference, tmp_path):
    from qboson.cli import main

    out = tmp_path / "b"
    rc = main(["sample", "--n", "4", "--m", "8", "--shots", "1000", "--seed", "5", "--out", str(out),
               "--dask-workers", "2", "--chunk-size", "300", "--quiet"])
    assert rc == 0
    assert _same_bytes(Bank(out), reference)
