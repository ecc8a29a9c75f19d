"""qboson._outdir: output folders are missing, empty or qboson's own; other folders are refused untouched."""

from __future__ import annotations

import json

import pytest

from qboson._outdir import MARKER, OutputDirError, check_output_dir, claim_output_dir
from qboson.cli import main


def _snapshot(folder):
    return {str(p.relative_to(folder)): (p.read_bytes() if p.is_file() else None) for p in sorted(folder.rglob("*"))}


def test_claim_creates_marks_and_reuses(tmp_path):
    out = tmp_path / "a" / "b"
    assert check_output_dir(out, "experiment-x") == "missing"
    assert claim_output_dir(out, "experiment-x") == out
    marker = json.loads((out / MARKER).read_text())
    assert marker["format"] == "qboson-output" and marker["kind"] == "experiment-x"
    (out / "result.json").write_text("{}")
    assert check_output_dir(out, "experiment-x") == "ours"
    claim_output_dir(out, "experiment-x")  # resuming is allowed
    assert (out / "result.json").read_text() == "{}"
    empty = tmp_path / "empty"
    empty.mkdir()
    assert check_output_dir(empty, "experiment-x") == "empty"


def test_claim_refuses_foreign_folders(tmp_path):
    user = tmp_path / "user"
    user.mkdir()
    (user / "thesis.tex").write_text("precious")
    with pytest.raises(OutputDirError, match="user"):
        claim_output_dir(user, "experiment-x")
    assert _snapshot(user) == {"thesis.tex": b"precious"}
    other = claim_output_dir(tmp_path / "other", "bank-like")
    with pytest.raises(OutputDirError, match="bank-like"):
        claim_output_dir(other, "experiment-x")
    (tmp_path / "file").write_text("x")
    with pytest.raises(OutputDirError, match="not a directory"):
        claim_output_dir(tmp_path / "file", "experiment-x")
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / MARKER).write_text("[1, 2")
    with pytest.raises(OutputDirError, match="unreadable"):
        claim_output_dir(bad, "experiment-x")
    # a legacy folder is accepted only when the caller recognises it
    assert claim_output_dir(user, "experiment-x", manifest=lambda d: (d / "thesis.tex").exists()) == user


@pytest.mark.parametrize("name", ["synthetic", "mog"])
def test_experiment_out_refuses_a_user_folder(tmp_path, name, capsys):
    pytest.importorskip("torch")
    user = tmp_path / "mine"
    (user / "cells").mkdir(parents=True)
    (user / "notes.txt").write_text("keep me")
    (user / "table.md").write_text("my table")
    (user / "cells" / "data.json").write_text("{}")
    before = _snapshot(user)
    assert main(["experiment", name, "--out", str(user), "--iterations", "1"]) == 2
    assert "mine" in capsys.readouterr().err
    assert _snapshot(user) == before


def test_experiment_out_resumes_a_legacy_result_folder(tmp_path):
    pytest.importorskip("torch")
    from qboson.experiments import _grid

    legacy = tmp_path / "old"
    (legacy / "cells").mkdir(parents=True)
    (legacy / "settings.json").write_text(json.dumps({"lr": 0.1}))
    (legacy / "table.md").write_text("old table")
    store = _grid.ResultStore(legacy, {"lr": 0.1}, kind="experiment-x")
    assert store.pending([{"seed": 0}]) == [{"seed": 0}]
    assert json.loads((legacy / MARKER).read_text())["kind"] == "experiment-x"


def test_qm9_grid_out_refuses_a_user_folder(tmp_path, capsys):
    pytest.importorskip("torch")
    import argparse

    from qboson.experiments import qm9

    user = tmp_path / "grid"
    user.mkdir()
    (user / "runs.csv").write_text("mine")
    (user / "holiday.jpg").write_bytes(b"\xff\xd8")
    before = _snapshot(user)
    parser = argparse.ArgumentParser()
    qm9.add_arguments(parser)
    for extra in ([], ["--summary-only"]):
        args = parser.parse_args(["--latents", "gaussian", "--dim", "4", "--seeds", "0", "--out", str(user), *extra])
        assert qm9.run(args) == 2
        assert "holiday.jpg" in capsys.readouterr().err
        assert _snapshot(user) == before
