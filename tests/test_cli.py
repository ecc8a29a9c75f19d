import subprocess
import sys

import pytest

from qboson import cli
from qboson.demo import latent_statistics, run


def test_demo_prints_quantum_and_photonic_statistics(capsys):
    assert cli.main(["demo", "--n", "4", "--m", "8", "--shots", "2000"]) == 0
    out = capsys.readouterr().out
    assert "| Fano factor (var/mean) |" in out and "quantum | photonic" in out


def test_demo_statistics_separate_quantum_from_photonic():
    # Bunching: indistinguishable photons have a larger Fano factor than distinguishable ones.
    text = run(n=6, m=12, shots=5000, seed=3)
    row = next(line for line in text.splitlines() if line.startswith("| Fano"))
    quantum, photonic = (float(v) for v in row.strip("|").split("|")[1:3])
    assert quantum > 1.0 > photonic


def test_latent_statistics_on_known_counts():
    import numpy as np

    x = np.array([[2, 0], [0, 2], [1, 1], [1, 1]])
    stats = latent_statistics(x)
    assert stats["mean occupation"] == 1.0
    assert stats["Fano factor (var/mean)"] == pytest.approx(0.5)
    assert stats["P(mode holds >= 2)"] == 0.25
    assert stats["P(all photons apart)"] == 0.5


def test_help_and_unknown_command(capsys):
    assert cli.main([]) == 0
    with pytest.raises(SystemExit):
        cli.main(["no-such-command"])
    assert "invalid choice" in capsys.readouterr().err


def test_import_qboson_does_not_import_torch_rdkit_or_dask():
    code = "import sys, qboson; qboson.sample(n=2, m=3, shots=1, seed=0); " \
           "print(sorted(m for m in ('torch', 'rdkit', 'dask') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
