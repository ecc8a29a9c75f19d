"""Tests of qboson._bf16support: which devices compute bfloat16 in hardware, and the warning elsewhere."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from qboson import _bf16support as support  # noqa: E402


def _cpu(monkeypatch, amx, avx512_bf16, machine="x86_64"):
    """Pretend to be an x86 CPU with the given units (``None``: torch lacks that probe)."""
    monkeypatch.setattr(support.platform, "machine", lambda: machine)
    for name, value in zip(support._CPU_PROBES, (amx, avx512_bf16)):
        if value is None:
            monkeypatch.delattr(torch.cpu, name, raising=False)
        else:
            monkeypatch.setattr(torch.cpu, name, lambda v=value: v, raising=False)


@pytest.mark.parametrize("amx, avx512_bf16, expected", [(False, False, False), (True, False, True),
                                                        (False, True, True), (None, True, None)])
def test_cpu_bf16_units_are_read_from_torchs_probes(monkeypatch, amx, avx512_bf16, expected):
    _cpu(monkeypatch, amx, avx512_bf16)
    assert support.native_bf16("cpu") is expected


def test_non_x86_cpus_and_mps_are_unknown(monkeypatch):
    _cpu(monkeypatch, False, False, machine="aarch64")
    assert support.native_bf16("cpu") is None
    assert support.native_bf16("mps") is None


def test_emulated_bf16_warns_once_asked_for_and_names_the_way_out(monkeypatch):
    _cpu(monkeypatch, False, False)
    with pytest.warns(RuntimeWarning, match="precision 'bf16'.*no AMX or AVX512-BF16.*use precision 'fp32'"):
        assert support.warn_if_bf16_emulated("bf16", "cpu")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert not support.warn_if_bf16_emulated("fp32", "cpu")


@pytest.mark.parametrize("amx, avx512_bf16", [(True, False), (None, None)])
def test_native_or_unknown_bf16_does_not_warn(monkeypatch, amx, avx512_bf16):
    _cpu(monkeypatch, amx, avx512_bf16)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert not support.warn_if_bf16_emulated("bf16", "cpu")


def test_a_bf16_molgan_run_warns_on_a_cpu_without_bf16_units(monkeypatch, tmp_path):
    from qboson.molgan import GraphData, TrainConfig
    from qboson.molgan.trainer import open_run

    _cpu(monkeypatch, False, False)
    rng = np.random.default_rng(0)
    adj = np.triu(rng.integers(0, 4, (20, 9, 9)), 1)
    data = GraphData(rng.integers(0, 5, (20, 9)), adj + adj.transpose(0, 2, 1))
    config = TrainConfig(latent="gaussian", dim=4, iterations=2, batch_size=4, generator_widths=(8, 16),
                         critic_conv_dims=(8, 8), critic_aggregation_dim=8, critic_mlp_dims=(8,),
                         latent_bank_size=50, curve_points=0, precision="bf16")
    with pytest.warns(RuntimeWarning, match="bf16"):
        open_run(config, tmp_path / "bf16", data=data)
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        open_run(config.replace(precision="fp32"), tmp_path / "fp32", data=data)


def test_a_bf16_small_gan_warns_on_a_cpu_without_bf16_units(monkeypatch):
    from qboson.experiments import gan

    _cpu(monkeypatch, False, False)
    config = gan.GanConfig(latent_dim=3, data_dim=2, hidden=(8, 8), batch_size=16, critic_steps=2, lr=1e-3,
                           precision="bf16")
    with pytest.warns(RuntimeWarning, match="bf16"):
        gan.GanTrainer(config, [0])
