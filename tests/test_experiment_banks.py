"""``--latent-bank`` and the ``pt_series`` latent in the experiment grids (issue #13)."""

from __future__ import annotations

import json

import numpy as np
import pytest

pytest.importorskip("torch")

from qboson.cli import main  # noqa: E402
from qboson.experiments import _banks, mog, synthetic  # noqa: E402
from qboson.latent import Bank, generate_bank, make  # noqa: E402

MOG_TINY = ["--seeds", "2", "--iterations", "2", "--hidden", "8", "8", "--batch-size", "8",
            "--n-data", "200", "--n-latent", "100", "--n-gen", "300", "--no-progress"]
SYN_TINY = ["--runs", "1", "--iterations", "2", "--hidden", "8", "8", "--batch-size", "16", "--n-train", "300",
            "--n-latent", "200", "--n-gen", "100", "--n-mmd", "40", "--no-progress", "--datasets", "quantum"]


@pytest.fixture(scope="module")
def banks(tmp_path_factory):
    root = tmp_path_factory.mktemp("banks")
    generate_bank(make("pt_series", dim=16, seed=11, threads=1), 1000, root / "pt_series", progress=False)
    generate_bank(make("quantum", dim=16, seed=12, threads=1), 1000, root / "quantum", progress=False)
    return root


def test_bank_rows_are_disjoint_seeded_slices(banks):
    entry = _banks.resolve([str(banks)], 16)["pt_series"]
    a = _banks.BankLatent(entry, seed=1)
    train, held = a.take(300), a.take(200)
    bank = Bank(banks / "pt_series")
    all_rows = {tuple(r) for r in np.asarray(bank.take(np.arange(len(bank)))).round(6).tolist()}
    assert {tuple(r) for r in train.round(6).tolist()} <= all_rows
    # Disjoint by index; a different seed gives another order; the same seed the same one.
    order = a._order
    assert len(set(order[:300]) & set(order[300:500])) == 0
    np.testing.assert_array_equal(_banks.BankLatent(entry, seed=1).take(300), train)
    assert not np.array_equal(_banks.BankLatent(entry, seed=2).take(300), train)
    with pytest.raises(ValueError, match="holds 1000 rows"):
        a.take(600)
    # Rows are centred on the bank's recorded (own) mean.
    np.testing.assert_allclose(bank.take(np.arange(1000)).mean(axis=0), np.asarray(bank.raw).mean(axis=0) - bank.mean,
                               atol=1e-5)


def test_mog_trains_from_banks_and_pt_series(tmp_path, banks, capsys):
    out = tmp_path / "mog"
    rc = main(["experiment", "mog", "--out", str(out), *MOG_TINY, "--latents", "quantum", "pt_series", "gaussian",
               "--latent-bank", str(banks)])
    assert rc == 0, capsys.readouterr().err
    settings = json.loads((out / "settings.json").read_text())
    assert set(settings["latent_banks"]) == {"quantum", "pt_series"}
    rec = json.loads((out / "cells" / "latent=pt_series__seed=1.json").read_text())
    assert "pt_series latent" in rec["latent"] and str(banks / "pt_series") in rec["latent"]
    assert "table.md" in {p.name for p in out.iterdir()}
    # pt_series without a bank: its own 1-1 circuit per seed.
    assert main(["experiment", "mog", "--out", str(tmp_path / "live"), *MOG_TINY, "--seeds", "1",
                 "--latents", "pt_series"]) == 0
    rec = json.loads((tmp_path / "live" / "cells" / "latent=pt_series__seed=0.json").read_text())
    assert rec["latent"].startswith("pt_series latent: 16 time bins, loops 1-1")


def test_synthetic_trains_from_a_labelled_bank(tmp_path, banks, capsys):
    out = tmp_path / "syn"
    rc = main(["experiment", "synthetic", "--out", str(out), *SYN_TINY, "--latents", "hw", "gaussian",
               "--latent-bank", f"hw={banks / 'pt_series'}"])
    assert rc == 0, capsys.readouterr().err
    rec = json.loads((out / "cells" / "dataset=quantum__latent=hw__run=0.json").read_text())
    assert "pt_series" in rec["latent"]


def test_bank_arguments_fail_clearly(tmp_path, banks, capsys):
    cases = [
        (["--latents", "quantum", "--latent-bank", str(tmp_path / "missing")], "not a directory"),
        (["--latents", "quantum", "--latent-bank", str(tmp_path)], "no bank.json"),
        (["--latents", "gaussian", "--latent-bank", str(banks)], "does not list"),
        (["--latents", "hw", "--latent-bank", f"hw={banks}"], "single bank directory"),
        (["--latents", "cat"], "unknown latent"),
    ]
    for extra, message in cases:
        assert main(["experiment", "mog", "--out", str(tmp_path / "x"), *MOG_TINY, *extra]) == 2
        assert message in capsys.readouterr().err
    small = tmp_path / "small"
    generate_bank(make("gaussian", dim=8, seed=0), 50, small / "gaussian", progress=False)
    assert main(["experiment", "mog", "--out", str(tmp_path / "y"), *MOG_TINY, "--latents", "gaussian",
                 "--latent-bank", str(small)]) == 2
    assert "dimension 8" in capsys.readouterr().err


def test_qm9_grid_passes_each_latents_bank_to_its_runs(tmp_path, banks):
    import argparse

    from qboson.experiments import qm9

    parser = argparse.ArgumentParser()
    qm9.add_arguments(parser)
    args = parser.parse_args(["--latents", "quantum,pt_series,gaussian", "--dim", "16,32", "--seeds", "0-1",
                              "--out", str(tmp_path), "--latent-bank", str(banks)])
    grid = qm9._grid_configs(args)
    paths = {(c.latent, c.dim, c.seed): c.latent_bank_path for c, _ in grid}
    for seed in (0, 1):  # one fixed bank for every seed, only at the bank's dimension
        assert paths[("quantum", 16, seed)] == str((banks / "quantum").resolve())
        assert paths[("pt_series", 16, seed)] == str((banks / "pt_series").resolve())
        assert paths[("gaussian", 16, seed)] is None and paths[("quantum", 32, seed)] is None
    args = parser.parse_args(["--latents", "quantum", "--out", str(tmp_path), "--latent-bank", str(tmp_path / "no")])
    with pytest.raises(ValueError, match="not a directory"):
        qm9._grid_configs(args)
