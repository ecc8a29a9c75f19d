"""Run folders of MolGAN: hostile checkpoints, folders qboson did not create, log/checkpoint write order."""

from __future__ import annotations

import csv
import os
import pickle

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from qboson.molgan import GraphData, TrainConfig, load_checkpoint, train  # noqa: E402
from qboson._outdir import MARKER, OutputDirError  # noqa: E402
from qboson.molgan import runfiles  # noqa: E402

TINY = dict(latent="gaussian", dim=4, seed=2, iterations=20, batch_size=8, n_critic=5,
            generator_widths=(8, 16), critic_conv_dims=(8,), critic_aggregation_dim=8, critic_mlp_dims=(8,),
            latent_bank_size=100, log_every=2, checkpoint_every=5, curve_points=0)


def _data(n: int = 40) -> GraphData:
    rng = np.random.default_rng(0)
    adj = np.triu(rng.integers(0, 4, (n, 9, 9)), 1)
    return GraphData(rng.integers(0, 5, (n, 9)), adj + adj.transpose(0, 2, 1))


def _bank() -> np.ndarray:
    return np.random.default_rng(1).standard_normal((100, 4)).astype(np.float32)


class _Payload:
    """Unpickling this object would create a file: proof that code ran."""

    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


@pytest.mark.filterwarnings("ignore:Detected pickle protocol")  # the hostile file below is written with protocol 4
def test_checkpoint_is_not_executed(tmp_path):
    run = tmp_path / "run"
    train(TrainConfig(**TINY), run, data=_data(), latent_bank=_bank(), progress=False, stop_after=5)
    marker = tmp_path / "pwned"
    good = load_checkpoint(run)
    good["generator"] = _Payload(str(marker))  # a real checkpoint with one hostile entry
    with open(run / runfiles.CHECKPOINT, "wb") as f:
        pickle.dump(good, f)
    with pytest.raises(ValueError, match="corrupt checkpoint"):
        load_checkpoint(run)
    with pytest.raises(ValueError, match="corrupt checkpoint"):
        train(TrainConfig(**TINY), run, resume=True, data=_data(), progress=False)
    from qboson.molgan.evaluate import load_generator

    with pytest.raises(ValueError, match="corrupt checkpoint"):
        load_generator(run)
    assert not marker.exists()


def test_checkpoint_holds_only_plain_data(tmp_path):
    run = tmp_path / "run"
    train(TrainConfig(**TINY), run, data=_data(), latent_bank=_bank(), progress=False, stop_after=5)
    ckpt = torch.load(run / runfiles.CHECKPOINT, weights_only=True)  # the strict loader accepts it
    assert ckpt["critic_step"] == 5 and isinstance(ckpt["real_stream"]["perm"], torch.Tensor)


def test_train_does_not_overwrite_a_user_folder(tmp_path):
    user = tmp_path / "mine"
    user.mkdir()
    (user / "config.json").write_text("my own notes\n")
    (user / "metrics.csv").write_text("a,b\n1,2\n")
    with pytest.raises(OutputDirError, match="was not written by qboson"):
        train(TrainConfig(**TINY), user, data=_data(), latent_bank=_bank(), progress=False)
    with pytest.raises(OutputDirError, match="was not written by qboson"):
        train(TrainConfig(**TINY), user, resume=True, data=_data(), latent_bank=_bank(), progress=False)
    assert (user / "config.json").read_text() == "my own notes\n"
    assert (user / "metrics.csv").read_text() == "a,b\n1,2\n"
    assert sorted(p.name for p in user.iterdir()) == ["config.json", "metrics.csv"]
    a_file = tmp_path / "file"
    a_file.write_text("x")
    with pytest.raises(OutputDirError, match="not a directory"):
        train(TrainConfig(**TINY), a_file, data=_data(), latent_bank=_bank(), progress=False)


def test_empty_folder_and_unmarked_old_run_are_accepted(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    train(TrainConfig(**TINY), empty, data=_data(), latent_bank=_bank(), progress=False, stop_after=5)
    assert (empty / MARKER).is_file()
    (empty / MARKER).unlink()  # as written by qboson before the manifest existed
    summary = train(TrainConfig(**TINY), empty, resume=True, data=_data(), progress=False)
    assert summary["finished"] and (empty / MARKER).is_file()
    bank = tmp_path / "bank"  # another kind of qboson output is not a run folder
    bank.mkdir()
    (bank / MARKER).write_text('{"format": "qboson-output", "kind": "bank"}')
    with pytest.raises(OutputDirError, match="bank output"):
        train(TrainConfig(**TINY), bank, data=_data(), latent_bank=_bank(), progress=False)


def _rows(path):
    with open(path, newline="") as f:
        return [{k: v for k, v in r.items() if k != "elapsed_s"} for r in csv.DictReader(f)]


def test_metrics_survive_a_kill_between_log_and_checkpoint_writes(tmp_path, monkeypatch):
    cfg = TrainConfig(**TINY)
    train(cfg, tmp_path / "full", data=_data(), latent_bank=_bank(), progress=False)

    run = tmp_path / "killed"
    real_save = runfiles.save_checkpoint
    calls = {"n": 0}

    def dying_save(state, path):
        calls["n"] += 1
        if calls["n"] == 2:  # the second checkpoint: the logs are written, the checkpoint is not
            raise KeyboardInterrupt
        real_save(state, path)

    from qboson.molgan import trainer

    monkeypatch.setattr(trainer, "save_checkpoint", dying_save)
    with pytest.raises(KeyboardInterrupt):
        train(cfg, run, data=_data(), latent_bank=_bank(), progress=False)
    monkeypatch.setattr(trainer, "save_checkpoint", real_save)
    assert load_checkpoint(run)["critic_step"] == 5
    assert int(_rows(run / "metrics.csv")[-1]["critic_step"]) == 10  # rows past the checkpoint, dropped on resume
    train(cfg, run, resume=True, data=_data(), progress=False)
    assert _rows(run / "metrics.csv") == _rows(tmp_path / "full" / "metrics.csv")
