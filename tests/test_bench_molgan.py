"""bench/bench_molgan.py --stacks: the timing of a finished run's checkpoint (regression)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")

from qboson.molgan import GraphData, train  # noqa: E402
from qboson.molgan.config import TrainConfig  # noqa: E402
from qm9_fakes import fake_data  # noqa: E402
from test_molgan_train import TINY  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))
bench_molgan = pytest.importorskip("bench_molgan")


def test_stacks_time_a_finished_checkpoint(tmp_path, monkeypatch):
    # regression: a checkpoint at the end of its schedule (as every finished run's is) did not
    # advance, so every "trained" setting was timed as 0 ms and the table printed nan
    monkeypatch.setattr(GraphData, "qm9_train", classmethod(lambda cls, data_seed=0: fake_data()))
    train(TrainConfig(**{**TINY, "iterations": 10}), tmp_path / "run", progress=False)
    result = bench_molgan.bench_stacks([2], ["fp32"], steps=2, warmup=1, rounds=1,
                                       trained=str(tmp_path / "run" / "checkpoint.pt"))
    trained = [r for r in result["rows"] if r["state"] == "trained"]
    assert {(r["loop"], r["runs"], r["flush_denormal"]) for r in trained} == {
        ("train", 1, True), ("stack", 2, True), ("train", 1, False)}
    assert all(r["start_step"] == 10 and r["ms_per_update_per_run"] > 0 for r in trained)
    assert "nan" not in bench_molgan.stacks_table(result)
