"""Tests of qboson.experiments._grid: result store, resumption, statistics and tables."""

from __future__ import annotations

import csv
import json
import math

import numpy as np
import pytest

from qboson.experiments import _grid


def test_mean_sem_matches_numpy():
    xs = [0.3, 1.7, 2.2, 5.0, -1.0]
    mean, sem, n = _grid.mean_sem(xs)
    assert n == 5
    assert mean == pytest.approx(np.mean(xs))
    assert sem == pytest.approx(np.std(xs, ddof=1) / math.sqrt(5))
    m1, s1, n1 = _grid.mean_sem([4.0, float("nan")])
    assert (m1, n1) == (4.0, 1) and math.isnan(s1)
    assert _grid.mean_sem([])[2] == 0


def test_summarise_groups_and_averages():
    recs = [
        {"d": "a", "l": "x", "m": 1.0},
        {"d": "a", "l": "x", "m": 3.0},
        {"d": "a", "l": "y", "m": 10.0},
        {"d": "b", "l": "x", "m": 7.0},
    ]
    rows = _grid.summarise(recs, ["d", "l"], ["m"])
    assert [(r["d"], r["l"], r["n"]) for r in rows] == [("a", "x", 2), ("a", "y", 1), ("b", "x", 1)]
    assert rows[0]["m"] == 2.0 and rows[0]["m_sem"] == pytest.approx(1.0)
    assert math.isnan(rows[1]["m_sem"])


def test_cell_names_are_safe():
    assert _grid.cell_name({"dataset": "quantum", "run": 3}) == "dataset=quantum__run=3"
    for bad in ({"a": "x/y"}, {"a": "x__y"}, {"a b": 1}, {}):
        with pytest.raises(ValueError):
            _grid.cell_name(bad)


def test_store_round_trip_pending_and_resume(tmp_path):
    cells = [{"latent": "gaussian", "seed": s} for s in range(3)]
    store = _grid.ResultStore(tmp_path, {"lr": 5e-4, "hidden": (8, 8)})
    assert store.pending(cells) == cells
    store.save(cells[1], {"score": 0.25})
    assert store.load(cells[1]) == {"cell": cells[1], "score": 0.25}
    assert store.pending(cells) == [cells[0], cells[2]]
    # a new store over the same folder with the same settings (tuple vs list) resumes
    again = _grid.ResultStore(tmp_path, {"hidden": [8, 8], "lr": 5e-4})
    assert [r["score"] for r in again.results(cells)] == [0.25]
    assert not [p for p in tmp_path.rglob("*") if ".tmp" in p.name]


def test_store_refuses_other_settings(tmp_path):
    _grid.ResultStore(tmp_path, {"lr": 5e-4, "steps": 10})
    with pytest.raises(ValueError, match="differing: steps"):
        _grid.ResultStore(tmp_path, {"lr": 5e-4, "steps": 20})


def test_store_reports_corrupt_and_misplaced_files(tmp_path):
    store = _grid.ResultStore(tmp_path, {})
    cell = {"latent": "quantum", "seed": 0}
    store.path(cell).parent.mkdir(parents=True, exist_ok=True)
    store.path(cell).write_text('{"cell": {"latent": "quantum", "se')
    with pytest.raises(ValueError, match="corrupt"):
        store.load(cell)
    store.path(cell).write_text(json.dumps({"cell": {"latent": "gaussian", "seed": 0}}))
    with pytest.raises(ValueError, match="does not hold"):
        store.load(cell)
    (tmp_path / "settings.json").write_text("{not json")
    with pytest.raises(ValueError, match="corrupt"):
        _grid.ResultStore(tmp_path, {})


def test_atomic_write_leaves_nothing_on_failure(tmp_path):
    target = tmp_path / "x.json"
    target.write_text("old")
    with pytest.raises(TypeError):
        _grid.atomic_write_bytes(target, "not bytes")  # type: ignore[arg-type]
    assert target.read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["x.json"]


def test_write_table_markdown_and_csv(tmp_path):
    rows = _grid.summarise(
        [{"latent": "q", "m": 0.031}, {"latent": "q", "m": 0.041}, {"latent": "g", "m": 0.06}], ["latent"], ["m"]
    )
    md, cs = _grid.write_table(rows, tmp_path / "t", ["latent"], ["m"], digits={"m": 3}, title="T")
    text = md.read_text()
    assert text.startswith("T\n")
    assert "| q | 0.036 ± 0.005 | 2 |" in text
    assert "| g | 0.060 | 1 |" in text
    with open(cs) as f:
        got = list(csv.DictReader(f))
    assert got[0]["latent"] == "q" and float(got[0]["m"]) == pytest.approx(0.036)
    assert float(got[0]["m_sem"]) == pytest.approx(0.005)


def test_derive_seed_and_chunks():
    assert _grid.derive_seed(1, 2, 3) == _grid.derive_seed(1, 2, 3)
    assert len({_grid.derive_seed(0, 1, r) for r in range(50)}) == 50
    assert 0 <= _grid.derive_seed(7) < 2**63
    with pytest.raises(ValueError):
        _grid.derive_seed(-1)
    assert _grid.chunks([1, 2, 3, 4, 5], 2) == [[1, 2], [3, 4], [5]]
    with pytest.raises(ValueError):
        _grid.chunks([1], 0)
    assert _grid.stack_id([{"a": 1}]) != _grid.stack_id([{"a": 2}])


def test_store_rejects_hostile_json_with_a_clear_error(tmp_path):
    cell = {"seed": 0}
    store = _grid.ResultStore(tmp_path / "a", {"lr": 1})
    for bad in ({"cell": cell, "evaluations": 3}, {"cell": cell, "evaluations": [{"iteration": "5"}]},
                {"cell": cell, "evaluations": [[1]]}):
        store.path(cell).parent.mkdir(exist_ok=True)
        store.path(cell).write_text(json.dumps(bad))
        with pytest.raises(ValueError, match="corrupt"):
            store.pending([cell])
    (tmp_path / "a" / "settings.json").write_text("[1, 2]")
    with pytest.raises(ValueError, match="corrupt"):
        _grid.ResultStore(tmp_path / "a", {"lr": 1})


@pytest.mark.parametrize("name", ["mog", "synthetic"])
def test_precision_flag_reaches_the_trainer_and_the_settings(name, tmp_path, monkeypatch, capsys):
    """``--precision bf16`` (shared flag of both experiments) reaches GanConfig and settings.json, is
    absent from an fp32 grid's settings (grids made before the flag resume) and is never mixed in."""
    import importlib

    pytest.importorskip("torch")
    import qboson.experiments.gan as gan
    from qboson.cli import main

    tiny = importlib.import_module(f"test_experiment_{name}").TINY
    extra = ["--latents", "gaussian"] + (["--datasets", "quantum"] if name == "synthetic" else [])

    def run(out, *flags):
        return main(["experiment", name, "--out", str(out), *tiny, *extra, *flags])

    seen = []
    real = gan.train_stack

    def recording(config, *a, **k):
        seen.append(config.precision)
        return real(config, *a, **k)

    monkeypatch.setattr(gan, "train_stack", recording)
    assert run(tmp_path / "bf16", "--precision", "bf16") == 0
    assert run(tmp_path / "fp32") == 0
    assert seen == ["bf16", "fp32"]
    assert json.loads((tmp_path / "bf16" / "settings.json").read_text())["precision"] == "bf16"
    assert "precision" not in json.loads((tmp_path / "fp32" / "settings.json").read_text())
    capsys.readouterr()
    assert run(tmp_path / "fp32", "--precision", "bf16") == 2  # not mixed into an fp32 grid
    assert "different settings" in capsys.readouterr().err
    assert run(tmp_path / "fp32", "--precision", "fp32") == 0 and seen == ["bf16", "fp32"]  # nothing retrained
