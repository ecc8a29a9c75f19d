"""Stacked MolGAN training: K runs in one loop equal the same runs trained alone."""

from __future__ import annotations

import csv
import shutil

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from qboson.molgan import GraphData, TrainConfig, load_checkpoint, train  # noqa: E402
from qboson.molgan.model import Discriminator, Generator  # noqa: E402
from qboson.molgan.stacked import (StackedDiscriminator, StackedGenerator, stack_adam_states,  # noqa: E402
                                   stacked_gradient_penalty, train_stack, unstack_adam_state)
from qboson.molgan.batches import derived_seed  # noqa: E402
from qboson.molgan.trainer import build_models, gradient_penalty  # noqa: E402

# conv dims (8, 8): the first layer (5 -> 8) takes the neighbour-sum-first path, the second (13 -> 8) the other
TINY = dict(latent="gaussian", dim=4, seed=3, iterations=30, batch_size=8, n_critic=5,
            generator_widths=(8, 16), critic_conv_dims=(8, 8), critic_aggregation_dim=8, critic_mlp_dims=(8,),
            latent_bank_size=100, log_every=5, checkpoint_every=10, lr_generator=1e-3, lr_critic=1e-3,
            curve_points=0, output_mode="gumbel")
SEEDS = (3, 4, 5)


def _data(n: int = 50, seed: int = 0) -> GraphData:
    rng = np.random.default_rng(seed)
    adj = np.triu(rng.integers(0, 4, (n, 9, 9)), 1)
    return GraphData(rng.integers(0, 5, (n, 9)), adj + adj.transpose(0, 2, 1))


def _banks():
    # different latents per run: a Gaussian, a uniform and a +-1 bank
    rng = np.random.default_rng(7)
    return [rng.standard_normal((100, 4)).astype(np.float32), rng.uniform(-1, 1, (100, 4)).astype(np.float32),
            rng.choice([-1.0, 1.0], (100, 4)).astype(np.float32)]


def _configs(**kw):
    latents = ("gaussian", "uniform", "bernoulli")
    return [TrainConfig(**{**TINY, **kw, "seed": s, "latent": latent}) for s, latent in zip(SEEDS, latents)]


def _rows(run_dir):
    with open(run_dir / "metrics.csv", newline="") as f:
        return [{k: float(v) for k, v in row.items() if k != "elapsed_s"} for row in csv.DictReader(f)]


def _assert_close_states(a, b, rtol=1e-4, atol=1e-5):
    for part in ("generator", "critic"):
        assert a[part].keys() == b[part].keys()
        for name in a[part]:
            assert torch.allclose(a[part][name], b[part][name], rtol=rtol, atol=atol), (part, name)


def test_stacked_runs_equal_runs_trained_alone(tmp_path):
    data, banks, configs = _data(), _banks(), _configs()
    summaries = train_stack(configs, [tmp_path / f"stack{k}" for k in range(3)], data=data, latent_banks=banks,
                            progress=False)
    assert all(s["finished"] and s["stack"] == 3 and s["critic_step"] == 30 for s in summaries)
    for k, config in enumerate(configs):
        train(config, tmp_path / f"alone{k}", data=data, latent_bank=banks[k], progress=False)
        alone, stacked = load_checkpoint(tmp_path / f"alone{k}"), load_checkpoint(tmp_path / f"stack{k}")
        assert stacked["config"] == alone["config"] and stacked["critic_step"] == 30
        _assert_close_states(alone, stacked)
        for name in ("opt_generator", "opt_critic"):  # Adam's moments too, in the single-run layout
            for i, st in alone[name]["state"].items():
                for key, value in st.items():
                    assert torch.allclose(value, stacked[name]["state"][i][key], rtol=1e-4, atol=1e-6)
        # the same random streams were drawn: identical positions and generator states
        assert stacked["latent_stream"]["pos"] == alone["latent_stream"]["pos"]
        assert stacked["augment_rng"] == alone["augment_rng"]
        assert torch.equal(stacked["noise_rng"], alone["noise_rng"])
        ra, rs = _rows(tmp_path / f"alone{k}"), _rows(tmp_path / f"stack{k}")
        assert len(ra) == len(rs) == 6
        for x, y in zip(ra, rs):
            assert x.keys() == y.keys()
            assert all(np.isclose(x[c], y[c], rtol=1e-4, atol=1e-5) for c in x)
    # the runs really differ from each other (seeds and latents are not shared by mistake)
    w = [load_checkpoint(tmp_path / f"stack{k}")["generator"]["edge_head.weight"] for k in range(3)]
    assert not torch.allclose(w[0], w[1]) and not torch.allclose(w[1], w[2])


def test_stack_resume_is_bit_for_bit(tmp_path):
    data, banks, configs = _data(), _banks()[:2], _configs()[:2]
    full = [tmp_path / f"full{k}" for k in range(2)]
    cut = [tmp_path / f"cut{k}" for k in range(2)]
    train_stack(configs, full, data=data, latent_banks=banks, progress=False)
    first = train_stack(configs, cut, data=data, latent_banks=banks, progress=False, stop_after=13)
    assert not first[0]["finished"] and first[0]["critic_step"] == 13
    train_stack(configs, cut, data=data, progress=False, resume=True)
    for a, b in zip(full, cut):
        ca, cb = load_checkpoint(a), load_checkpoint(b)
        for part in ("generator", "critic"):
            for name in ca[part]:
                assert torch.equal(ca[part][name], cb[part][name]), (part, name)
        assert _rows(a) == _rows(b)


def test_stacked_run_resumes_alone(tmp_path):
    """A stack's checkpoint is an ordinary single-run checkpoint: ``train(resume=True)`` continues it."""
    data, banks, configs = _data(), _banks()[:2], _configs()[:2]
    train_stack(configs, [tmp_path / "s0", tmp_path / "s1"], data=data, latent_banks=banks, progress=False,
                stop_after=12)
    summary = train(configs[1], tmp_path / "s1", data=data, progress=False, resume=True)
    assert summary["finished"]
    train(configs[1], tmp_path / "alone", data=data, latent_bank=banks[1], progress=False)
    _assert_close_states(load_checkpoint(tmp_path / "alone"), load_checkpoint(tmp_path / "s1"))


def test_stack_catches_up_a_run_whose_checkpoint_lags(tmp_path):
    """A kill between the runs' checkpoint writes leaves them at different steps; resume evens them out."""
    data, banks, configs = _data(), _banks()[:2], _configs()[:2]
    dirs = [tmp_path / "r0", tmp_path / "r1"]
    train_stack(configs, dirs, data=data, latent_banks=banks, progress=False, stop_after=10)
    shutil.copytree(dirs[1], tmp_path / "r1-at-10")
    train_stack(configs, dirs, data=data, progress=False, resume=True, stop_after=20)
    shutil.rmtree(dirs[1])
    shutil.copytree(tmp_path / "r1-at-10", dirs[1])  # run 1 as if its step-20 checkpoint was never written
    assert load_checkpoint(dirs[1])["critic_step"] == 10 and load_checkpoint(dirs[0])["critic_step"] == 20
    summaries = train_stack(configs, dirs, data=data, progress=False, resume=True)
    assert [s["critic_step"] for s in summaries] == [30, 30] and all(s["finished"] for s in summaries)
    for k in range(2):
        train(configs[k], tmp_path / f"alone{k}", data=data, latent_bank=banks[k], progress=False)
        _assert_close_states(load_checkpoint(tmp_path / f"alone{k}"), load_checkpoint(dirs[k]))
        assert [r["critic_step"] for r in _rows(dirs[k])] == [5, 10, 15, 20, 25, 30]


def test_stack_refuses_runs_with_other_settings(tmp_path):
    configs = _configs()[:2]
    with pytest.raises(ValueError, match="batch_size"):
        train_stack([configs[0], configs[1].replace(batch_size=16)], [tmp_path / "a", tmp_path / "b"],
                    data=_data(), progress=False)
    with pytest.raises(ValueError, match="own folder"):
        train_stack(configs, [tmp_path / "a", tmp_path / "a"], data=_data(), progress=False)
    with pytest.raises(ValueError, match="2 configs but 1"):
        train_stack(configs, [tmp_path / "a"], data=_data(), progress=False)
    with pytest.raises(TypeError, match="TrainConfig"):
        train_stack([configs[0], configs[1].to_dict()], [tmp_path / "a", tmp_path / "b"], data=_data(),
                    progress=False)
    with pytest.raises(ValueError, match="at least one"):
        train_stack([], [], data=_data(), progress=False)
    assert not (tmp_path / "a").exists()


def _random_graphs(k, b, seed):
    g = torch.Generator().manual_seed(seed)
    e = torch.softmax(torch.randn(k, b, 9, 9, 4, generator=g), -1)
    e = 0.5 * (e + e.transpose(2, 3))
    x = torch.softmax(torch.randn(k, b, 9, 5, generator=g), -1)
    return e, x


@pytest.mark.parametrize("conv_dims", [(128, 64), (8, 8)])
def test_stacked_networks_compute_what_single_networks_compute(conv_dims):
    torch.manual_seed(0)
    gens = [Generator(4, widths=(8, 16, 24)) for _ in range(3)]
    critics = [Discriminator(conv_dims=conv_dims, aggregation_dim=16, mlp_dims=(16, 8)) for _ in range(3)]
    sg, sd = StackedGenerator(gens), StackedDiscriminator(critics)
    z = torch.randn(3, 5, 4)
    edges, nodes = sg(z)
    e, x = _random_graphs(3, 5, 1)
    scores = sd(e, x)
    real, fake = _random_graphs(3, 5, 2), _random_graphs(3, 5, 3)
    eps = torch.rand(3, 5)
    gp = stacked_gradient_penalty(sd, real, fake, eps)
    for k in range(3):
        ref_e, ref_x = gens[k](z[k])
        assert torch.allclose(edges[k], ref_e, rtol=1e-5, atol=1e-5)
        assert torch.allclose(nodes[k], ref_x, rtol=1e-5, atol=1e-5)
        assert torch.allclose(scores[k], critics[k](e[k], x[k]), rtol=1e-5, atol=1e-6)
        ref_gp = gradient_penalty(critics[k], (real[0][k], real[1][k]), (fake[0][k], fake[1][k]), eps[k])
        assert torch.allclose(gp[k], ref_gp, rtol=1e-5, atol=1e-6)
    # the stacked generator symmetrises and masks its edge head's weights, the single one its
    # logits: the same function, so the same gradients (also for the diagonal's rows, zero)
    probe = torch.randn(3, 5, 9, 9, 4), torch.randn(3, 5, 9, 5)
    ((edges * probe[0]).sum() + (nodes * probe[1]).sum()).backward()
    for k in range(3):
        ref_e, ref_x = gens[k](z[k])
        ((ref_e * probe[0][k]).sum() + (ref_x * probe[1][k]).sum()).backward()
        for name, p in zip(sg.names, sg.stacked):
            ref = dict(gens[k].named_parameters())[name].grad
            assert torch.allclose(p.grad[k], ref, rtol=1e-4, atol=1e-5), name
    # the diagonal stays exactly the "no bond" margin
    assert torch.all(edges.diagonal(dim1=2, dim2=3)[..., 0, :] == 1e4)
    # member state dicts round-trip into the single modules
    for k in range(3):
        assert all(torch.equal(v, gens[k].state_dict()[n]) for n, v in sg.member_state_dict(k).items())
    sg.load_member_state_dict(1, gens[2].state_dict())
    assert torch.allclose(sg(z)[0][1], gens[2](z[1])[0], rtol=1e-5, atol=1e-5)


def test_adam_states_stack_and_unstack_exactly():
    torch.manual_seed(0)
    nets = [torch.nn.Linear(3, 2) for _ in range(2)]
    opts = [torch.optim.Adam(n.parameters(), lr=0.1) for n in nets]
    for n, o in zip(nets, opts):
        for _ in range(2):
            o.zero_grad()
            n(torch.randn(4, 3)).pow(2).sum().backward()
            o.step()
    stacked = stack_adam_states([o.state_dict() for o in opts])
    assert stacked["state"][0]["exp_avg"].shape == (2, 2, 3)
    for k, o in enumerate(opts):
        back = unstack_adam_state(stacked, k)
        for i, st in o.state_dict()["state"].items():
            assert all(torch.equal(v, back["state"][i][n]) for n, v in st.items())
    opts[1].step()  # one more step: the optimisers are no longer in step
    with pytest.raises(ValueError, match="different steps"):
        stack_adam_states([o.state_dict() for o in opts])


def test_bf16_precision_is_opt_in_and_close_to_fp32(tmp_path):
    with pytest.raises(ValueError, match="precision"):
        TrainConfig(**{**TINY, "precision": "fp16"})
    data, bank = _data(), _banks()[0]
    base = TrainConfig(**TINY)
    train(base, tmp_path / "fp32", data=data, latent_bank=bank, progress=False)
    train(base.replace(precision="bf16"), tmp_path / "bf16", data=data, latent_bank=bank, progress=False)
    a, b = load_checkpoint(tmp_path / "fp32"), load_checkpoint(tmp_path / "bf16")
    w32, w16 = a["generator"]["edge_head.weight"], b["generator"]["edge_head.weight"]
    assert w16.dtype == torch.float32  # parameters stay float32
    assert not torch.equal(w32, w16)  # bf16 really was used
    # 30 Adam steps of lr 1e-3 move the weights; bf16 rounding bends that path only a little
    assert (w32 - w16).norm() < 0.3 * (w32 - _initial_edge_head(base)).norm()
    ra, rb = _rows(tmp_path / "fp32"), _rows(tmp_path / "bf16")
    assert all(np.isfinite(r["critic_loss"]) and np.isfinite(r["gradient_penalty"]) for r in rb)
    assert abs(ra[-1]["wasserstein"] - rb[-1]["wasserstein"]) < 0.05 + 0.05 * abs(ra[-1]["wasserstein"])
    # and in a stack, a bf16 run stays close to the same bf16 run alone
    configs = [c.replace(precision="bf16") for c in _configs()[:2]]
    train_stack(configs, [tmp_path / "sb0", tmp_path / "sb1"], data=data, latent_banks=_banks()[:2], progress=False)
    train(configs[0], tmp_path / "ab0", data=data, latent_bank=_banks()[0], progress=False)
    _assert_close_states(load_checkpoint(tmp_path / "ab0"), load_checkpoint(tmp_path / "sb0"), rtol=1e-2, atol=2e-3)


def test_bf16_training_is_unchanged_by_the_tabulated_activations(tmp_path, monkeypatch):
    # the bf16 critic's tanh and sigmoid go through qboson._lookup16 (large tensors only; forced here):
    # same values and gradients as torch's, so the same trajectory bit for bit, alone and stacked
    from qboson import _lookup16

    data, banks = _data(), _banks()[:2]
    configs = [c.replace(precision="bf16", iterations=12) for c in _configs()[:2]]
    states = {}
    for label, threshold in (("torch", 1 << 62), ("lookup", 0)):
        monkeypatch.setattr(_lookup16, "MIN_ELEMENTS", threshold)
        dirs = [tmp_path / f"{label}{k}" for k in range(2)]
        train_stack(configs, dirs, data=data, latent_banks=banks, progress=False)
        train(configs[0], tmp_path / f"{label}-alone", data=data, latent_bank=banks[0], progress=False)
        states[label] = [load_checkpoint(d) for d in [*dirs, tmp_path / f"{label}-alone"]]
    for a, b in zip(states["torch"], states["lookup"]):
        for part in ("generator", "critic"):
            for name in a[part]:
                assert torch.equal(a[part][name], b[part][name]), (part, name)


def _initial_edge_head(config):
    """The generator's edge-head weight as ``train`` initialises it."""
    torch.manual_seed(derived_seed(config.seed, "init"))
    return build_models(config)[0].edge_head.weight.detach()


def test_short_axis_softmax_matches_torch_softmax_and_its_gradient():
    from qboson.molgan.model import relax

    g = torch.Generator().manual_seed(0)
    edges = (torch.randn(6, 9, 9, 4, generator=g) * 30).requires_grad_(True)  # large logits: the shift matters
    nodes = torch.randn(6, 9, 5, generator=g).requires_grad_(True)
    e, x = relax(edges, nodes, "softmax", 0.7)
    ref_e, ref_x = torch.softmax(edges / 0.7, -1), torch.softmax(nodes / 0.7, -1)
    assert torch.allclose(e, ref_e, atol=1e-6) and torch.allclose(x, ref_x, atol=1e-6)
    w = torch.randn(6, 9, 9, 4, generator=g)
    (grad,) = torch.autograd.grad((e * w).sum(), edges)
    (ref_grad,) = torch.autograd.grad((ref_e * w).sum(), edges)
    assert torch.allclose(grad, ref_grad, atol=1e-6)


def test_precision_flag_reaches_the_config():
    import argparse

    from qboson.molgan.cli import add_training_flags, training_overrides

    parser = argparse.ArgumentParser()
    add_training_flags(parser)
    assert training_overrides(parser.parse_args(["--precision", "bf16"]))["precision"] == "bf16"
    assert training_overrides(parser.parse_args([]))["precision"] is None  # the profile's (fp32) stays
    with pytest.raises(SystemExit):
        parser.parse_args(["--precision", "fp8"])


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_cached_generator_head_follows_every_change_of_the_weights(precision):
    # the critic updates reuse the generator head's prepared weights; a stale copy after a generator
    # update would be off by one Adam step, within the stacked-vs-single tolerance, so check bit for bit
    from qboson.molgan.trainer import forward_precision

    torch.manual_seed(0)
    gen = StackedGenerator([Generator(4, widths=(8, 16)) for _ in range(3)])
    opt = torch.optim.Adam(gen.parameters(), lr=1e-2)
    z = torch.randn(3, 5, 4)
    cpu = torch.device("cpu")

    def fresh():  # what an uncached forward gives
        gen._head_cache = None
        with forward_precision(precision, cpu), torch.no_grad():
            return gen(z)

    for step in range(3):
        with forward_precision(precision, cpu), torch.no_grad():
            first, again = gen(z), gen(z)  # the second one from the cache
        assert gen._head_cache is not None
        expected = fresh()
        for a, b, c in zip(first, again, expected):
            assert torch.equal(a, b) and torch.equal(a, c)
        with forward_precision(precision, cpu):
            loss = sum(t.float().square().mean() for t in gen(z))  # with autograd: never cached
        opt.zero_grad()
        loss.backward()
        opt.step()  # in place: the next no-grad forward must see the new weights
        with forward_precision(precision, cpu), torch.no_grad():
            after = gen(z)
        for a, c in zip(after, fresh()):
            assert torch.equal(a, c)
        assert not torch.equal(after[0], first[0])
    gen.load_member_state_dict(1, {k: v + 1 for k, v in gen.member_state_dict(1).items()})
    with forward_precision(precision, cpu), torch.no_grad():
        loaded = gen(z)
    for a, c in zip(loaded, fresh()):
        assert torch.equal(a, c)
