"""``qboson sample`` and ``qboson inspect``."""

import json
import sys

import numpy as np
import pytest

import qboson
from qboson.cli import main
from qboson.latent import Bank


def _sample(tmp_path, *extra, name="q"):
    return main(["sample", "--n", "3", "--m", "6", "--shots", "500", "--out", str(tmp_path / name), "--quiet", *extra])


def test_sample_and_resume_with_the_recorded_seed(tmp_path, capsys):
    assert _sample(tmp_path, "--seed", "7") == 0
    bank = Bank(tmp_path / "q")
    np.testing.assert_array_equal(bank.raw, qboson.sample(3, 6, 500, seed=7))
    assert "quantum" in capsys.readouterr().out
    # growing without --seed reuses the bank's seed
    assert main(["sample", "--n", "3", "--m", "6", "--shots", "800", "--out", str(tmp_path / "q"), "--quiet"]) == 0
    np.testing.assert_array_equal(Bank(tmp_path / "q").raw, qboson.sample(3, 6, 800, seed=7))


def test_sample_kinds_and_unitary_file(tmp_path):
    u = qboson.haar_unitary(5, seed=1)
    np.save(tmp_path / "u.npy", u)
    rc = main(["sample", "--kind", "photonic", "--unitary", str(tmp_path / "u.npy"), "--input-modes", "0,2,4",
               "--shots", "300", "--seed", "1", "--out", str(tmp_path / "p"), "--quiet"])
    assert rc == 0
    bank = Bank(tmp_path / "p")
    assert bank.metadata["input_modes"] == [0, 2, 4]
    np.testing.assert_array_equal(
        bank.raw, qboson.sample(unitary=u, input_modes=[0, 2, 4], shots=300, seed=1, distinguishable=True)
    )
    assert main(["sample", "--kind", "gaussian", "--m", "4", "--shots", "50", "--seed", "0",
                 "--out", str(tmp_path / "g"), "--quiet", "--scale"]) == 0
    assert Bank(tmp_path / "g").scale is True


def test_sample_errors(tmp_path, capsys):
    assert _sample(tmp_path, "--seed", "1", "--shots", "0") == 2
    assert main(["sample", "--n", "9", "--m", "6", "--shots", "5", "--out", str(tmp_path / "x"), "--quiet"]) == 2
    assert "more photons than modes" in capsys.readouterr().err
    assert _sample(tmp_path, "--seed", "1") == 0
    assert _sample(tmp_path, "--seed", "2") == 1  # another latent in the same directory
    assert "different latent" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["sample", "--kind", "nope", "--shots", "5", "--out", str(tmp_path / "y")])


def test_inspect_prints_plots_and_reports_json(tmp_path, capsys):
    _sample(tmp_path, "--seed", "3")
    main(["sample", "--kind", "photonic", "--n", "3", "--m", "6", "--shots", "500", "--seed", "3",
          "--out", str(tmp_path / "p"), "--quiet"])
    capsys.readouterr()
    png = tmp_path / "stats.png"
    assert main(["inspect", str(tmp_path / "q"), str(tmp_path / "p"), "--plot", str(png)]) == 0
    text = capsys.readouterr().out
    assert "Fano factor" in text and "bunching" in text
    assert png.read_bytes()[:4] == b"\x89PNG"
    assert main(["inspect", str(tmp_path / "q"), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    (stats,) = report.values()
    assert stats["shots"] == 500 and stats["photons_per_shot"] == 3.0
    assert abs(stats["fano_total"] - stats["fano_total_exact"]) < 0.15


def test_inspect_refuses_a_tampered_bank(tmp_path, capsys):
    _sample(tmp_path, "--seed", "3")
    data = tmp_path / "q" / "samples.npy"
    raw = bytearray(data.read_bytes())
    raw[-1] ^= 1
    data.write_bytes(bytes(raw))
    assert main(["inspect", str(tmp_path / "q")]) == 1
    assert "modified" in capsys.readouterr().err


def test_inspect_plot_without_matplotlib(tmp_path, capsys, monkeypatch):
    _sample(tmp_path, "--seed", "3")
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    monkeypatch.setitem(sys.modules, "matplotlib.pyplot", None)
    assert main(["inspect", str(tmp_path / "q"), "--plot", str(tmp_path / "x.png")]) == 2
    assert "qboson[plot]" in capsys.readouterr().err


def _tree(folder):
    return {str(p.relative_to(folder)): (p.read_bytes() if p.is_file() else None) for p in sorted(folder.rglob("*"))}


def test_sample_out_refuses_a_folder_that_is_not_a_bank(tmp_path, capsys):
    user = tmp_path / "mine"
    (user / "chunks").mkdir(parents=True)
    (user / "samples.npy").write_bytes(b"my own array")
    (user / "samples_old.npy").write_bytes(b"another")
    (user / "chunks" / "notes.txt").write_text("unrelated")
    before = _tree(user)
    assert main(["sample", "--n", "2", "--m", "4", "--shots", "50", "--seed", "1", "--out", str(user), "--quiet"]) == 1
    err = capsys.readouterr().err
    assert "mine" in err and "not empty" in err
    assert _tree(user) == before
    # an empty folder is fine
    (tmp_path / "empty").mkdir()
    assert main(["sample", "--n", "2", "--m", "4", "--shots", "50", "--seed", "1", "--out", str(tmp_path / "empty"),
                 "--quiet"]) == 0


def test_sample_refuses_to_change_a_finished_banks_normalisation(tmp_path, capsys):
    assert _sample(tmp_path, "--seed", "4") == 0
    meta = (tmp_path / "q" / "bank.json").read_bytes()
    row0 = Bank(tmp_path / "q").rows(0, 1)
    capsys.readouterr()
    for flags in (["--scale"], ["--no-centre"]):
        assert _sample(tmp_path, "--seed", "4", *flags) == 1
        assert "normalisation" in capsys.readouterr().err
        assert (tmp_path / "q" / "bank.json").read_bytes() == meta
    np.testing.assert_array_equal(Bank(tmp_path / "q").rows(0, 1), row0)
    assert _sample(tmp_path, "--seed", "4") == 0  # the recorded settings still resume


def test_sample_resume_with_a_hostile_seed_is_a_clean_error(tmp_path, capsys):
    out = tmp_path / "q"
    out.mkdir()
    (out / "bank.json").write_text('{"seed": 1e999, "format": "qboson-bank"}')
    assert _sample(tmp_path) == 1
    assert "bank.json" in capsys.readouterr().err
