"""``qboson experiment qm9 --scheduler / --dask-workers``: the grid's runs as Dask tasks give the
same run folders as the local grid, survive a killed worker, and resume after a failure or Ctrl-C
by rerunning only the unfinished runs.

QM9 and the chemistry evaluation are replaced by random graphs and counts of the decoded graphs
(as in test_experiment_qm9.py).  Monkeypatches do not reach Dask's worker processes, so this file
is also the workers' preload script: its ``dask_setup`` installs the same replacements there.
Workers log every training call to ``<grid>-calls/`` and obey fault markers in ``<grid>-faults/``.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import signal
import threading
import time
import uuid
from pathlib import Path

import pytest

pytest.importorskip("torch")
distributed = pytest.importorskip("distributed")

import dask  # noqa: E402
import torch  # noqa: E402

from qboson.experiments import qm9  # noqa: E402
from qboson.experiments._dask_runner import _call, file_lock  # noqa: E402
from qboson.molgan.config import PROFILES  # noqa: E402
from qm9_fakes import fake_data, fake_evaluate  # noqa: E402

molgan_train = importlib.import_module("qboson.molgan.trainer")
molgan_stacked = importlib.import_module("qboson.molgan.stacked")
molgan_evaluate = importlib.import_module("qboson.molgan.evaluate")

TINY = dict(batch_size=8, latent_bank_size=64, log_every=2, checkpoint_every=4, generator_widths=(8, 16),
            critic_conv_dims=(8,), critic_aggregation_dim=8, critic_mlp_dims=(8,), curve_points=0)
RUNS = ["bernoulli-d4-s0", "bernoulli-d4-s1", "gaussian-d4-s0", "gaussian-d4-s1"]
TIMING = {"elapsed_s", "train_seconds", "iterations_per_second", "wall_seconds", "seconds"}


# --- the replacements, installed in this process (monkeypatch) and in every worker (dask_setup) ---

def _side_folder(run_dir, kind: str) -> Path:
    grid = Path(run_dir).parent
    return grid.with_name(f"{grid.name}-{kind}")


def _lock_is_held(path: Path) -> bool:
    """Whether some open file holds the flock on ``path`` (the task running this training)."""
    import fcntl

    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)  # also drops the lock if we just took it
    return False


def _install_fakes(set_attr) -> None:
    real_train = molgan_train.train

    def train(config, out_dir, **kw):
        name = Path(out_dir).name
        calls = _side_folder(out_dir, "calls")
        calls.mkdir(exist_ok=True)
        locked = "locked" if _lock_is_held(Path(out_dir).parent / f".{name}.lock") else "unlocked"
        (calls / f"{name}--{locked}--{os.getpid()}-{uuid.uuid4().hex[:8]}").touch()
        faults = _side_folder(out_dir, "faults")
        if (faults / f"slow-{name}").exists():
            time.sleep(2)
        if (faults / f"fail-{name}").exists():
            raise RuntimeError(f"injected failure in {name}")
        kill = faults / f"kill-{name}"
        if kill.exists():  # train a little (a checkpoint at critic step 2), then die like a lost node
            kill.unlink()
            real_train(config, out_dir, **{**kw, "stop_after": 2})
            os.kill(os.getpid(), signal.SIGKILL)
        return real_train(config, out_dir, **kw)

    real_train_stack = molgan_stacked.train_stack

    def train_stack(configs, out_dirs, **kw):  # the same log, one entry per run of the stack
        _side_folder(out_dirs[0], "calls").mkdir(exist_ok=True)
        for d in out_dirs:
            name = Path(d).name
            locked = "locked" if _lock_is_held(Path(d).parent / f".{name}.lock") else "unlocked"
            (_side_folder(d, "calls") / f"{name}--{locked}--{os.getpid()}-{uuid.uuid4().hex[:8]}").touch()
        kill = _side_folder(out_dirs[0], "faults") / f"kill-{Path(out_dirs[0]).name}"
        if kill.exists():
            kill.unlink()
            real_train_stack(configs, out_dirs, **{**kw, "stop_after": 2})
            os.kill(os.getpid(), signal.SIGKILL)
        return real_train_stack(configs, out_dirs, **kw)

    set_attr(molgan_train.GraphData, "qm9_train", classmethod(lambda cls, data_seed=0: fake_data()))
    set_attr(molgan_train, "train", train)
    set_attr(molgan_stacked, "train_stack", train_stack)
    set_attr(molgan_evaluate, "evaluate_run", fake_evaluate)


def dask_setup(worker) -> None:
    """Dask worker preload hook (``distributed.worker.preload``): the replacements in each worker."""
    _install_fakes(setattr)


# --- fixtures and helpers ---

def _args(out: Path, **kw) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    qm9.add_arguments(parser)
    args = parser.parse_args(["--latents", "gaussian,bernoulli", "--dim", "4", "--seeds", "0-1", "--profile", "quick",
                              "--out", str(out), "--iterations", "6", "--eval-samples", "20", "--no-plots"])
    for k, v in kw.items():
        setattr(args, k, v)
    return args


def _patch_driver(mp: pytest.MonkeyPatch) -> None:
    mp.setitem(PROFILES, "quick", {**PROFILES["quick"], **TINY})
    mp.setattr(qm9, "_prepare_shared_caches", lambda config: None)


@pytest.fixture
def driver(monkeypatch):
    """This process as the grid's client: tiny profile, no QM9 caches to prepare."""
    _patch_driver(monkeypatch)


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """The local grid (``--jobs 1``, this process) every Dask grid must reproduce."""
    out = tmp_path_factory.mktemp("local") / "grid"
    with pytest.MonkeyPatch.context() as mp:
        _patch_driver(mp)
        _install_fakes(mp.setattr)
        assert qm9.run(_args(out)) == 0
    return out


@pytest.fixture(scope="module")
def client():
    with dask.config.set({"distributed.worker.preload": [__file__]}), distributed.LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1", dashboard_address=None,
    ) as cluster, distributed.Client(cluster) as c:
        yield c


def _calls(out: Path) -> list[str]:
    """The runs trained so far (one entry per training call); each must have held its run's lock."""
    folder = _side_folder(out / "x", "calls")
    names = [p.name.split("--") for p in folder.iterdir()] if folder.exists() else []
    assert all(n[1] == "locked" for n in names), names
    return sorted(n[0] for n in names)


def _fault(out: Path, kind: str, run: str) -> Path:
    folder = _side_folder(out / "x", "faults")
    folder.mkdir(parents=True, exist_ok=True)
    marker = folder / f"{kind}-{run}"
    marker.touch()
    return marker


def _same(a, b, path: str) -> None:
    if isinstance(a, torch.Tensor):
        assert isinstance(b, torch.Tensor) and a.dtype == b.dtype and torch.equal(a, b), path
    elif isinstance(a, dict):
        assert isinstance(b, dict) and a.keys() == b.keys(), path
        for k in a:
            if k not in TIMING:
                _same(a[k], b[k], f"{path}.{k}")
    elif isinstance(a, (list, tuple)):
        assert type(a) is type(b) and len(a) == len(b), path
        for i, (x, y) in enumerate(zip(a, b)):
            _same(x, y, f"{path}[{i}]")
    else:
        assert a == b, path


def _csv_without_timing(path: Path) -> list[dict]:
    import csv

    with open(path, newline="") as f:
        return [{k: v for k, v in row.items() if k not in TIMING} for row in csv.DictReader(f)]


def assert_same_grid(out: Path, reference: Path, runs: list[str] = RUNS) -> None:
    """Every run folder holds the same weights, optimiser and random states, data and results as the
    local grid's; only wall-clock times may differ."""
    assert sorted(p.name for p in out.iterdir() if p.is_dir()) == runs
    assert not list(out.glob(".*.lock"))  # the task locks are gone
    for run in runs:
        a, b = out / run, reference / run
        for name in ("config.json", "latent_bank.npy", "eval.json", "samples.smi"):
            assert (a / name).read_bytes() == (b / name).read_bytes(), f"{run}/{name}"
        for folder in (a, b):  # the output manifest (it records its creation time, so not byte-equal)
            assert json.loads((folder / ".qboson-output.json").read_text())["kind"] == "molgan-run"
        _same(molgan_train.load_checkpoint(a), molgan_train.load_checkpoint(b), f"{run}/checkpoint.pt")
        assert molgan_train.load_checkpoint(a)["iteration"] == 6
        _same(json.loads((a / "train_summary.json").read_text()), json.loads((b / "train_summary.json").read_text()),
              f"{run}/train_summary.json")
        assert _csv_without_timing(a / "metrics.csv") == _csv_without_timing(b / "metrics.csv")
    for name in ("runs.csv", "table.md", "table.csv") if runs == RUNS else ():
        assert (out / name).read_bytes() == (reference / name).read_bytes(), name


# --- tests ---

def test_dask_grid_matches_local_grid(client, reference, driver, tmp_path, capsys):
    out = tmp_path / "grid"
    assert qm9.run(_args(out, scheduler=client.scheduler.address)) == 0
    assert_same_grid(out, reference)
    assert _calls(out) == RUNS  # one training per run, all on the workers
    err = capsys.readouterr().err
    assert "Dask tcp://127.0.0.1" in err and "[4/4]" in err
    # a second call finds the grid finished and submits nothing
    assert qm9.run(_args(out, scheduler=client.scheduler.address)) == 0
    assert _calls(out) == RUNS and "0 to do" in capsys.readouterr().err


@pytest.fixture(scope="module")
def stacked_reference(tmp_path_factory):
    """The local grid trained in stacks of two (``--stack 2``, this process)."""
    out = tmp_path_factory.mktemp("local-stacked") / "grid"
    with pytest.MonkeyPatch.context() as mp:
        _patch_driver(mp)
        _install_fakes(mp.setattr)
        assert qm9.run(_args(out, stack=2)) == 0
    return out


def test_stacked_dask_grid_matches_local_stacked_grid(client, stacked_reference, driver, tmp_path, capsys):
    out = tmp_path / "grid"
    assert qm9.run(_args(out, scheduler=client.scheduler.address, stack=2)) == 0
    assert_same_grid(out, stacked_reference)
    assert _calls(out) == RUNS  # each run trained once, in a stack, holding its lock
    assert "[4/4]" in capsys.readouterr().err


@pytest.mark.parametrize("stack, reference_fixture, retrained", [
    (1, "reference", ["gaussian-d4-s0"]),
    # the killed run is the first of the first stack: both runs of that stack start again
    (2, "stacked_reference", ["bernoulli-d4-s0", "gaussian-d4-s0"]),
], ids=["single-runs", "stacks"])
def test_killed_worker_resumes_from_the_checkpoints(client, driver, tmp_path, request, stack, reference_fixture,
                                                    retrained):
    out = tmp_path / "grid"
    marker = _fault(out, "kill", "gaussian-d4-s0")
    assert qm9.run(_args(out, scheduler=client.scheduler.address, stack=stack)) == 0
    assert not marker.exists()  # the worker did die
    # the killed task was started again on a live worker and resumed from critic step 2: still bit for bit
    assert_same_grid(out, request.getfixturevalue(reference_fixture))
    assert _calls(out) == sorted(RUNS + retrained)
    client.wait_for_workers(2, timeout=60)  # the nanny restarts the killed worker


def test_failed_run_is_reported_and_a_rerun_trains_only_it(client, reference, driver, tmp_path, capsys):
    out = tmp_path / "grid"
    marker = _fault(out, "fail", "bernoulli-d4-s1")
    assert qm9.run(_args(out, scheduler=client.scheduler.address)) == 1
    err = capsys.readouterr().err
    assert "1 of 4 task(s) failed (bernoulli-d4-s1" in err and "injected failure" in err
    assert sorted(p.parent.name for p in out.glob("*/eval.json")) == [r for r in RUNS if r != "bernoulli-d4-s1"]
    assert "| bernoulli | 4 | 1 |" in (out / "table.md").read_text()  # tables written as results arrived
    before = _calls(out)
    assert before.count("bernoulli-d4-s1") == 2  # tried, and retried once
    marker.unlink()
    assert qm9.run(_args(out, scheduler=client.scheduler.address)) == 0
    assert _calls(out) == sorted(before + ["bernoulli-d4-s1"])
    assert_same_grid(out, reference)


def test_interrupted_grid_reruns_only_unfinished_runs(client, reference, driver, tmp_path, monkeypatch):
    out = tmp_path / "grid"
    _fault(out, "slow", "gaussian-d4-s0")  # still training on one worker when the client stops
    real_report = qm9._report

    def ctrl_c(*a, **kw):  # Ctrl-C in the client as the first result arrives
        real_report(*a, **kw)
        raise KeyboardInterrupt

    monkeypatch.setattr(qm9, "_report", ctrl_c)
    with pytest.raises(KeyboardInterrupt):
        qm9.run(_args(out, scheduler=client.scheduler.address))
    assert 1 <= len(list(out.glob("*/eval.json"))) < 4
    monkeypatch.setattr(qm9, "_report", real_report)
    # Tasks already running on the cluster finish on their own; the resumed grid's copies of them
    # wait for their lock and then find them finished, so no run is trained twice.
    assert qm9.run(_args(out, scheduler=client.scheduler.address)) == 0
    assert _calls(out) == RUNS
    assert_same_grid(out, reference)


def test_cli_with_local_dask_workers(reference, tmp_path, monkeypatch):
    from qboson.cli import main

    _patch_driver(monkeypatch)
    out = tmp_path / "grid"
    with dask.config.set({"distributed.worker.preload": [__file__]}):  # one worker: a short test
        rc = main(["experiment", "qm9", "--latents", "gaussian", "--dim", "4", "--seeds", "1", "--out", str(out),
                   "--iterations", "6", "--eval-samples", "20", "--no-plots", "--dask-workers", "1"])
    assert rc == 0
    assert_same_grid(out, reference, runs=["gaussian-d4-s1"])
    assert _calls(out) == ["gaussian-d4-s1"]


@pytest.mark.parametrize("flags, message", [
    (dict(scheduler="tcp://127.0.0.1:1", dask_workers=2), "not both"),
    (dict(dask_workers=2, jobs=2), "--jobs"),
    (dict(scheduler="tcp://127.0.0.1:1", jobs=3), "--jobs"),
    (dict(dask_workers=0), "--dask-workers must be >= 1"),
])
def test_conflicting_or_bad_dask_flags_are_refused(driver, tmp_path, capsys, flags, message):
    assert qm9.run(_args(tmp_path / "grid", **flags)) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "grid").exists()


def test_without_dask_names_the_extra(driver, tmp_path, capsys, monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "distributed", None)
    assert qm9.run(_args(tmp_path / "grid", dask_workers=2)) == 2
    assert "qboson[dist]" in capsys.readouterr().err


def test_second_copy_of_a_run_waits_for_the_first(tmp_path):
    lock = str(tmp_path / ".run.lock")
    events = []
    inside = threading.Event()

    def first():
        with file_lock(lock):
            inside.set()
            time.sleep(0.3)
            events.append("first done")

    t = threading.Thread(target=first)
    t.start()
    inside.wait(10)
    with file_lock(lock):  # separate open() of the file: flock makes this wait for the thread
        events.append("second in")
    t.join()
    assert events == ["first done", "second in"]
    assert not os.path.exists(lock)


def test_unreachable_or_malformed_scheduler_is_a_clear_error(driver, tmp_path, capsys):
    with dask.config.set({"distributed.comm.timeouts.connect": "1s"}):
        assert qm9.run(_args(tmp_path / "grid", scheduler="tcp://127.0.0.1:1")) == 1
    assert "cannot reach the Dask scheduler 'tcp://127.0.0.1:1'" in capsys.readouterr().err
    assert qm9.run(_args(tmp_path / "grid", scheduler="nonsense")) == 2
    assert "nonsense" in capsys.readouterr().err
    assert not [p for p in (tmp_path / "grid").iterdir() if p.is_dir()]  # nothing trained, no run folder made


def test_runs_in_one_worker_process_do_not_overlap():
    # training seeds torch's process-wide generator: two runs at once in one multi-threaded
    # worker would not reproduce the local grid, so tasks in a process take turns
    active, most = [], []

    def run(i):
        active.append(i)
        most.append(len(active))
        time.sleep(0.05)
        active.remove(i)
        return i

    import qboson

    threads = [threading.Thread(target=_call, args=(run, (), qboson.__version__, i)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(most) == 4 and max(most) == 1


def test_worker_with_another_qboson_version_refuses_the_task():
    with pytest.raises(RuntimeError, match="same version"):
        _call(print, (), "0.0.0-other", "never printed")


def test_output_folder_missing_on_the_worker_names_shared_storage(tmp_path):
    import qboson

    lock = tmp_path / "not-mounted-here" / ".gaussian-d4-s0.lock"
    with pytest.raises(FileNotFoundError, match="shared by the client and the workers"):
        _call(print, (str(lock),), qboson.__version__, "never printed")
    assert not lock.parent.exists()


_DRIVER = """
import importlib.util, sys
import dask, pytest
spec = importlib.util.spec_from_file_location("qm9_dask_test", sys.argv[1])
m = importlib.util.module_from_spec(spec)
spec.loader.exec_module(m)
from qboson.cli import main
with pytest.MonkeyPatch.context() as mp:
    m._patch_driver(mp)
    with dask.config.set({"distributed.worker.preload": [sys.argv[1]]}):
        sys.exit(main(sys.argv[2:]))
"""


@pytest.mark.slow
def test_ctrl_c_stops_local_workers_and_a_rerun_resumes_from_checkpoints(tmp_path):
    import subprocess
    import sys

    out = tmp_path / "grid"
    cmd = [sys.executable, "-c", _DRIVER, __file__, "experiment", "qm9", "--latents", "gaussian,bernoulli", "--dim",
           "4", "--seeds", "0-1", "--out", str(out), "--iterations", "300", "--eval-samples", "20", "--no-plots",
           "--dask-workers", "2"]
    proc = subprocess.Popen(cmd, start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 300
        while not list(out.glob("*/checkpoint.pt")) and time.monotonic() < deadline:
            time.sleep(0.5)
        assert list(out.glob("*/checkpoint.pt")), "no run started"
        os.killpg(proc.pid, signal.SIGINT)  # Ctrl-C in a terminal: the client and its workers
        _, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    assert proc.returncode != 0, err.decode()[-2000:]
    interrupted = sorted(p.parent.name for p in out.glob("*/checkpoint.pt") if not (p.parent / "eval.json").exists())
    assert interrupted, "every run finished before the interrupt"
    stopped_at = {r: molgan_train.load_checkpoint(out / r)["iteration"] for r in interrupted}

    assert subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, timeout=600).returncode == 0
    assert sorted(p.parent.name for p in out.glob("*/eval.json")) == RUNS
    assert not list(out.glob(".*.lock"))
    assert sorted(set(_calls(out))) == RUNS
    for run in interrupted:  # resumed, not restarted, and equal to an uninterrupted local training
        assert stopped_at[run] < 300 and _calls(out).count(run) == 2
        config = molgan_train.TrainConfig.from_dict(json.loads((out / run / "config.json").read_text()))
        molgan_train.train(config, tmp_path / "local" / run, data=fake_data(), progress=False)
        _same(molgan_train.load_checkpoint(out / run), molgan_train.load_checkpoint(tmp_path / "local" / run), run)
