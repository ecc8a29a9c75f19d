"""bench/roofline.py: the counted matrix-product work of MolGAN's networks and loops against
the arithmetic of their shapes, and the machine ceilings it divides by."""

from __future__ import annotations

import platform
import sys
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
from torch.profiler import ProfilerActivity, profile  # noqa: E402

from qboson.molgan import GraphData, train  # noqa: E402
from qboson.molgan.config import TrainConfig  # noqa: E402
from qboson.molgan.model import Discriminator, Generator  # noqa: E402
from qboson.molgan.stacked import StackedDiscriminator, StackedGenerator  # noqa: E402
from qm9_fakes import fake_data  # noqa: E402
from test_molgan_train import TINY  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))
roofline = pytest.importorskip("roofline")
bench_molgan_cores = pytest.importorskip("bench_molgan_cores")


def _matmul_flops(fn) -> float:
    with profile(activities=[ProfilerActivity.CPU], with_flops=True) as prof:
        fn()
    return sum(e.flops for e in prof.key_averages() if e.key in roofline.MATMUL_OPS)


def _graphs(*lead: int, n: int = 9, a: int = 5, r: int = 4, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    edges = torch.softmax(torch.randn(*lead, n, n, r, generator=g), -1)
    nodes = torch.softmax(torch.randn(*lead, n, a, generator=g), -1)
    return edges, nodes


def test_generator_forward_flops_by_hand():
    # dim 4, widths (8, 16), 9 nodes, 5 atom and 4 bond classes: 4 x 24 + 8 x 16 + 16 x (324 + 45) MACs
    assert roofline.generator_forward_flops(4, (8, 16)) == 2 * (4 * 24 + 8 * 16 + 16 * 369)


@pytest.mark.parametrize("widths", [(8, 16), (16, 24, 40)])
def test_generator_forward_flops_match_the_profiler(widths):
    gen = Generator(4, widths=widths)
    z = torch.randn(3, 4)
    with torch.no_grad():
        counted = _matmul_flops(lambda: gen(z))
    assert counted == 3 * roofline.generator_forward_flops(4, widths)


def test_stacked_generator_does_the_same_products():
    gens = [Generator(4, widths=(8, 16)) for _ in range(2)]
    with torch.no_grad():
        counted = _matmul_flops(lambda: StackedGenerator(gens)(torch.randn(2, 3, 4)))
    assert counted == 2 * 3 * roofline.generator_forward_flops(4, (8, 16))


@pytest.mark.parametrize("conv_dims", [(8, 4), (16, 64)])
def test_critic_forward_flops_match_the_profiler(conv_dims):
    critic = Discriminator(conv_dims=conv_dims, aggregation_dim=8, mlp_dims=(8,))
    edges, nodes = _graphs(3)
    with torch.no_grad():
        counted = _matmul_flops(lambda: critic(edges, nodes))
    assert counted == 3 * roofline.critic_forward_flops(conv_dims, 8, (8,))


@pytest.mark.parametrize("conv_dims", [(8, 4), (16, 64)])
def test_stacked_critic_sums_narrow_layers_first(conv_dims):
    # (8, 4): the first layer (5 -> 8) sums over neighbours first, the second (13 -> 4) maps first;
    # (16, 64): both sum first.  Either way fewer flops than the single critic's order.
    critics = [Discriminator(conv_dims=conv_dims, aggregation_dim=8, mlp_dims=(8,)) for _ in range(2)]
    edges, nodes = _graphs(2, 3)
    with torch.no_grad():
        counted = _matmul_flops(lambda: StackedDiscriminator(critics)(edges, nodes))
    expected = roofline.critic_forward_flops(conv_dims, 8, (8,), neighbours_first_when_narrow=True)
    assert counted == 2 * 3 * expected
    assert expected < roofline.critic_forward_flops(conv_dims, 8, (8,))


@pytest.fixture
def tiny_checkpoint(tmp_path, monkeypatch) -> str:
    monkeypatch.setattr(GraphData, "qm9_train", classmethod(lambda cls, data_seed=0: fake_data()))
    train(TrainConfig(**{**TINY, "iterations": 12}), tmp_path / "run", progress=False)
    return str(tmp_path / "run" / "checkpoint.pt")


def test_update_work_is_per_run_and_covers_the_scored_batch(tiny_checkpoint):
    one = roofline.count_flops(tiny_checkpoint, "stack", runs=1, data=fake_data())
    three = roofline.count_flops(tiny_checkpoint, "stack", runs=3, steps=10, data=fake_data())
    single = roofline.count_flops(tiny_checkpoint, "train", data=fake_data())
    assert one["gflop"] == pytest.approx(three["gflop"], rel=1e-12)  # per run, whatever the stack
    assert one["runs"] == 1 and three["runs"] == 3 and single["runs"] == 1
    b = TINY["batch_size"]
    dims = (TINY["critic_conv_dims"], TINY["critic_aggregation_dim"], TINY["critic_mlp_dims"])
    fwd = roofline.critic_forward_flops(*dims, neighbours_first_when_narrow=True)
    # at least the forward and the backward (weights and activations) of the 2B scored graphs, and
    # the penalty's forward on B interpolates; at most ten such passes of all 3B graphs
    assert 3 * 2 * b * fwd + b * fwd <= one["gflop"] * 1e9 <= 10 * 3 * b * roofline.critic_forward_flops(*dims)
    assert single["gflop"] > one["gflop"]  # the single critic maps before it sums: more work


def test_update_work_refuses_partial_generator_cycles(tiny_checkpoint):
    with pytest.raises(ValueError, match="generator cycles"):
        roofline.count_flops(tiny_checkpoint, "stack", runs=1, steps=3, data=fake_data())
    with pytest.raises(ValueError, match="loop"):
        roofline.count_flops(tiny_checkpoint, "gan", data=fake_data())


def test_torch_matmul_rate_is_a_rate():
    assert roofline.torch_matmul_rate(1, size=64, seconds=0.05, repeats=1) > 0


@pytest.mark.skipif(platform.machine().lower() not in ("x86_64", "amd64") or roofline._compiler() is None,
                    reason="fma_peak.c needs x86-64 and a C compiler")
def test_fma_peak_builds_and_runs():
    peak = roofline.fma_peak(1, seconds=0.05, repeats=1)
    if peak["gflops"] is None:  # an x86-64 CPU without AVX2 and FMA
        pytest.skip(peak["why"])
    assert peak["gflops"] > 0 and peak["lanes"] in (8, 16)


def test_fma_peak_without_a_compiler(monkeypatch):
    monkeypatch.setattr(roofline.platform, "machine", lambda: "x86_64")
    monkeypatch.setattr(roofline.shutil, "which", lambda name: None)
    monkeypatch.delenv("CC", raising=False)
    assert roofline.fma_peak(1) == {"gflops": None, "why": "no C compiler (set CC)"}


@pytest.mark.skipif(platform.machine().lower() not in ("x86_64", "amd64") or roofline._compiler() is None,
                    reason="fma_peak.c needs x86-64 and a C compiler")
def test_fma_peak_names_the_build_error(tmp_path, monkeypatch):
    # a compiler that targets plain x86-64 (no AVX2): fma_peak.c refuses to build, and says why
    cc = tmp_path / "cc"
    cc.write_text(f'#!/bin/sh\nexec {roofline._compiler()} "$@" -march=x86-64\n')
    cc.chmod(0o755)
    monkeypatch.setenv("CC", str(cc))
    peak = roofline.fma_peak(1, seconds=0.05, repeats=1)
    assert peak["gflops"] is None and "needs AVX2 with FMA, or AVX-512" in peak["why"]


def _result() -> dict:
    work = {"train": {"gflop": 4.0, "batch_size": 256}, "stack": {"gflop": 3.0, "batch_size": 256}}
    return {"work": work, "rates": {"fma_peak_fp32": {"gflops": 150.0, "lanes": 8},
                                    "torch_mm_fp32": 100.0}}


def test_floors_divide_work_by_ceiling():
    fl = roofline.floors(_result())
    assert fl["fma_peak_fp32"] == {"train": pytest.approx(1000 * 4 / 150), "stack": pytest.approx(20.0)}
    assert fl["torch_mm_fp32"] == {"train": pytest.approx(40.0), "stack": pytest.approx(30.0)}
    text = roofline.report(_result(), baseline_ms=120.0)
    assert "| the cores' float32 FMA peak | 150.0 | 26.7 | 20.0 |" in text
    assert "15.0 ms per critic update per run" in text


def test_report_says_why_a_ceiling_is_missing():
    result = _result()
    result["rates"]["fma_peak_fp32"] = {"gflops": None, "why": "no C compiler (set CC)"}
    assert "not measured: no C compiler" in roofline.report(result)
    assert "fma_peak_fp32" not in roofline.floors(result)


def test_cores_table_gives_each_setting_its_rate():
    rows = [dict(name="baseline", loop="train", legacy=True, procs=1, runs=1, ms_per_update_per_run=120.0,
                 updates_per_s=1000 / 120, speedup=1.0),
            dict(name="stacks", loop="stack", legacy=False, procs=2, runs=8, ms_per_update_per_run=50.0,
                 updates_per_s=20.0, speedup=2.4)]
    result = {"rows": rows}
    bench_molgan_cores.add_work(result, _result())
    assert rows[0]["gflop_per_s"] is None and rows[1]["gflop_per_s"] == pytest.approx(60.0)
    text = bench_molgan_cores.table(result)
    assert "| stacks | 16 | 50.0 | 20.00 | 2.40x | 60.0 |" in text and "| baseline | 1 | 120.0 |" in text
    assert "Target (8x the baseline's 120.0 ms): 15.0 ms" in text


@pytest.mark.parametrize("argv, words", [
    (["--cores", "0"], "--cores"),
    (["--seconds", "0"], "--seconds"),
    (["--baseline-ms", "-1"], "--baseline-ms"),
])
def test_cli_refuses_bad_arguments_before_measuring(tmp_path, capsys, monkeypatch, argv, words):
    ckpt = tmp_path / "checkpoint.pt"
    ckpt.write_bytes(b"not read: the arguments are refused first")
    monkeypatch.setattr(roofline, "roofline", lambda *a, **k: pytest.fail("measuring started"))
    with pytest.raises(SystemExit) as err:
        roofline.main(["--trained", str(ckpt), *argv])
    assert err.value.code == 2 and words in capsys.readouterr().err


def test_cli_writes_a_new_result_file_only(tmp_path, capsys, monkeypatch):
    ckpt = tmp_path / "checkpoint.pt"
    ckpt.write_bytes(b"not read")
    existing = tmp_path / "mine.json"
    existing.write_text("someone's numbers")
    monkeypatch.setattr(roofline, "roofline", lambda *a, **k: _result())
    with pytest.raises(SystemExit):
        roofline.main(["--trained", str(ckpt), "--json", str(existing)])
    assert existing.read_text() == "someone's numbers"
    assert roofline.main(["--trained", str(ckpt), "--json", str(tmp_path / "new.json"), "--baseline-ms", "120"]) == 0
    assert "15.0 ms per critic update per run" in capsys.readouterr().out
    assert '"torch_mm_fp32": 100.0' in (tmp_path / "new.json").read_text()
