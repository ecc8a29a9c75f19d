"""``qboson experiment qm9 --stack K``: the grid's runs trained K at a time give the runs of the plain grid."""

from __future__ import annotations

import json

import pytest

torch = pytest.importorskip("torch")

from qboson.experiments import qm9  # noqa: E402
from qboson.molgan import stacked  # noqa: E402

from test_experiment_qm9 import _args, molgan_train, tiny_grid  # noqa: E402,F401


def test_grid_with_stack_matches_the_plain_grid(tmp_path, tiny_grid, monkeypatch):  # noqa: F811
    stacks = []
    real_train_stack = stacked.train_stack

    def counting_train_stack(configs, out_dirs, **kw):
        stacks.append([str(d) for d in out_dirs])
        return real_train_stack(configs, out_dirs, **kw)

    monkeypatch.setattr(stacked, "train_stack", counting_train_stack)
    assert qm9.run(_args(tmp_path / "plain", no_plots=True)) == 0
    assert qm9.run(_args(tmp_path / "stacked", no_plots=True, stack=3)) == 0
    # 4 runs of one architecture, seed-major: a stack of 3 and a stack of 1; no run trained alone
    assert [len(s) for s in stacks] == [3, 1] and len(tiny_grid["train"]) == 4
    assert len(tiny_grid["evaluate"]) == 8
    for name in ("bernoulli-d4-s0", "bernoulli-d4-s1", "gaussian-d4-s0", "gaussian-d4-s1"):
        a = molgan_train.load_checkpoint(tmp_path / "plain" / "grid" / name)
        b = molgan_train.load_checkpoint(tmp_path / "stacked" / "grid" / name)
        assert a["config"] == b["config"]
        for k, v in a["generator"].items():
            assert torch.allclose(v, b["generator"][k], rtol=1e-4, atol=1e-5), (name, k)
        evaluation = json.loads((tmp_path / "stacked" / "grid" / name / "eval.json").read_text())
        assert evaluation["seed"] == a["config"]["seed"]
    # a second call finds everything done
    assert qm9.run(_args(tmp_path / "stacked", no_plots=True, stack=3)) == 0
    assert len(stacks) == 2


def test_grid_accepts_runs_saved_before_a_setting_existed(tmp_path, tiny_grid):  # noqa: F811
    """A config.json without a newer field (precision) counts it at its default, not as other settings."""
    args = _args(tmp_path, no_plots=True, seeds="0", latents="gaussian")
    assert qm9.run(args) == 0
    path = tmp_path / "grid" / "gaussian-d4-s0" / "config.json"
    saved = json.loads(path.read_text())
    del saved["precision"]
    path.write_text(json.dumps(saved))
    (path.parent / "eval.json").unlink()
    assert qm9.run(args) == 0
    assert qm9.run(_args(tmp_path, no_plots=True, seeds="0", latents="gaussian", precision="bf16")) == 2


def test_bad_stack_size_is_refused(tmp_path, tiny_grid, capsys):  # noqa: F811
    assert qm9.run(_args(tmp_path, no_plots=True, stack=0)) == 2
    assert "--stack" in capsys.readouterr().err
