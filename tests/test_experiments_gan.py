"""Tests of qboson.experiments.gan: stacked networks, gradient penalty, training, checkpoints."""

from __future__ import annotations

import json
import importlib
import math
import sys

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from qboson.experiments import gan  # noqa: E402


@pytest.fixture(autouse=True)
def _one_thread():
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)


def _close(a, b, rtol=1e-5, atol=1e-6):
    # numpy's check: torch.testing's first call costs seconds of imports
    a = a.detach().numpy() if hasattr(a, "detach") else np.asarray(a)
    b = b.detach().numpy() if hasattr(b, "detach") else np.asarray(b)
    np.testing.assert_allclose(a, b, rtol=rtol, atol=atol)


def _cfg(**kw):
    base = dict(latent_dim=3, data_dim=2, hidden=(8, 8), batch_size=16, critic_steps=2, lr=1e-3)
    base.update(kw)
    return gan.GanConfig(**base)


@pytest.mark.parametrize(
    "kw, word",
    [
        (dict(objective="hinge"), "objective"),
        (dict(optimizer="sgd"), "optimizer"),
        (dict(activation="tanh"), "activation"),
        (dict(lr=0.0), "lr"),
        (dict(gp_weight=-1.0), "gp_weight"),
        (dict(batch_size=0), "batch_size"),
        (dict(critic_steps=0), "critic_steps"),
        (dict(hidden=(8, 0)), "hidden"),
    ],
)
def test_config_rejects_bad_settings(kw, word):
    with pytest.raises(ValueError, match=word):
        _cfg(**kw)


def test_stacked_mlp_matches_explicit_layers():
    net = gan.StackedMLP([3, 5, 4, 2], seeds=[1, 2], activation="leaky_relu", negative_slope=0.1)
    x = torch.randn(2, 7, 3, generator=torch.Generator().manual_seed(0))
    out = net(x)
    assert out.shape == (2, 7, 2)
    for r in range(2):
        h = x[r].double().numpy()
        for i, (w, b) in enumerate(zip(net.weights, net.biases)):
            h = h @ w[r].detach().double().numpy() + b[r, 0].detach().double().numpy()
            if i < 2:
                h = np.where(h > 0, h, 0.1 * h)
        np.testing.assert_allclose(out[r].detach().numpy(), h, rtol=1e-5, atol=1e-6)


def test_stacked_mlp_members_depend_only_on_their_seed():
    x = torch.randn(1, 6, 4)
    alone = gan.StackedMLP([4, 9, 1], seeds=[11])
    stacked = gan.StackedMLP([4, 9, 1], seeds=[5, 11, 7])
    _close(stacked(x.expand(3, 6, 4))[1], alone(x)[0])
    other = gan.StackedMLP([4, 9, 1], seeds=[12])
    assert not torch.allclose(other(x), alone(x))


def test_stacked_mlp_initialisation_bound():
    net = gan.StackedMLP([400, 3], seeds=[0])
    w = net.weights[0].detach()
    bound = 1 / math.sqrt(400)
    assert float(w.abs().max()) <= bound
    assert float(w.abs().max()) > 0.9 * bound  # uniform over the whole interval, not a narrower one


def test_gradient_penalty_of_a_linear_critic_is_exact():
    # D(x) = x . w + c has gradient w everywhere, so the penalty is (||w|| - 1)^2 for every member
    ws = torch.tensor([[3.0, 4.0], [0.6, 0.8]])

    def critic(x):
        return (x * ws[:, None, :]).sum(-1, keepdim=True) + 2.0

    real, fake = torch.randn(2, 5, 2), torch.randn(2, 5, 2)
    gp = gan.gradient_penalty(critic, real, fake, torch.rand(2, 5, 1))
    _close(gp, [16.0, 0.0])


def test_gradient_penalty_rejects_mismatched_batches():
    with pytest.raises(ValueError, match="shape"):
        gan.gradient_penalty(lambda x: x.sum(-1, keepdim=True), torch.zeros(1, 3, 2), torch.zeros(1, 4, 2),
                             torch.zeros(1, 3, 1))


def _data(seed, n=500):
    rng = np.random.default_rng(seed)
    return rng.normal(size=(n, 2)).astype(np.float32), rng.normal(size=(n, 3)).astype(np.float32)


def test_member_trains_identically_alone_or_stacked():
    cfg = _cfg(optimizer="adam")
    d1, z1 = _data(1)
    d2, z2 = _data(2)
    alone = gan.GanTrainer(cfg, [21])
    stacked = gan.GanTrainer(cfg, [21, 22])
    alone.train(4, gan.StackedSampler([d1], [21]), gan.StackedSampler([z1], [21], purpose=3))
    stacked.train(4, gan.StackedSampler([d1, d2], [21, 22]), gan.StackedSampler([z1, z2], [21, 22], purpose=3))
    for pa, ps in zip(alone.generator.parameters(), stacked.generator.parameters()):
        _close(ps[0], pa[0], rtol=1e-4, atol=1e-6)
    for pa, ps in zip(alone.critic.parameters(), stacked.critic.parameters()):
        _close(ps[0], pa[0], rtol=1e-4, atol=1e-6)
    # and the second member did move differently
    assert not torch.allclose(stacked.generator.weights[0][0], stacked.generator.weights[0][1])


@pytest.mark.parametrize("objective", ["wgan-gp", pytest.param("nonsaturating", marks=pytest.mark.slow)])
def test_gan_learns_a_shifted_gaussian(objective):
    torch.manual_seed(0)
    cfg = gan.GanConfig(latent_dim=2, data_dim=1, hidden=(16, 16), batch_size=64, critic_steps=3, lr=5e-3,
                        optimizer="adam", betas=(0.5, 0.9), objective=objective,
                        gp_weight=10.0 if objective == "wgan-gp" else 0.0)
    rng = np.random.default_rng(0)
    data = rng.normal(2.0, 0.5, size=(4000, 1)).astype(np.float32)
    lat = rng.normal(size=(4000, 2)).astype(np.float32)
    t = gan.GanTrainer(cfg, [4])
    before = float(t.generate(torch.as_tensor(lat[None, :1000])).mean())
    t.train(200, gan.StackedSampler([data], [4]), gan.StackedSampler([lat], [4], purpose=3))
    after = t.generate(torch.as_tensor(lat[None, :2000]))[0, :, 0].numpy()
    assert abs(before - 2.0) > 1.5
    assert abs(after.mean() - 2.0) < 0.5
    assert after.std() < 1.2  # the spread needs far more iterations; the location is what is checked


def test_training_rejects_wrong_shapes_and_detects_divergence():
    cfg = _cfg()
    t = gan.GanTrainer(cfg, [0])
    real = gan.StackedSampler([np.zeros((10, 2))], [0])
    with pytest.raises(ValueError, match="latent_batch"):
        t.step(real, lambda k: torch.zeros(1, k, 5))
    with pytest.raises(FloatingPointError, match="seeds \\[0\\]"):
        t.train(1, real, lambda k: torch.full((1, k, 3), float("nan")))


def test_sampler_validation_and_streams():
    with pytest.raises(ValueError, match="one array per seed"):
        gan.StackedSampler([np.zeros((3, 2))], [0, 1])
    with pytest.raises(ValueError, match="NaN"):
        gan.StackedSampler([np.full((3, 2), np.nan)], [0])
    with pytest.raises(ValueError, match="width"):
        gan.StackedSampler([np.zeros((3, 2)), np.zeros((3, 4))], [0, 1])
    rows = np.arange(40, dtype=np.float32).reshape(20, 2)
    a = gan.StackedSampler([rows], [5])(7)
    b = gan.StackedSampler([rows, rows], [9, 5])(7)
    _close(a[0], b[1], rtol=0, atol=0)  # a member's stream ignores the others


def test_train_stack_resumes_from_checkpoint(tmp_path):
    cfg = _cfg()
    d, z = _data(3, 200)

    def evaluate(trainer):
        return [trainer.generate(torch.as_tensor(z[None, :50])).sum().item()]

    straight = gan.train_stack(cfg, [8], [d], [z], 6, evaluate, eval_at=[3])
    ckpt = tmp_path / "stack.pt"
    calls = []

    def interrupted(trainer):
        calls.append(trainer.iterations)
        if trainer.iterations == 3 and len(calls) == 1:
            raise KeyboardInterrupt
        return evaluate(trainer)

    with pytest.raises(KeyboardInterrupt):
        gan.train_stack(cfg, [8], [d], [z], 6, interrupted, eval_at=[3], checkpoint=str(ckpt), checkpoint_every_s=0)
    assert ckpt.exists()  # saved after iterations 1 and 2
    resumed = gan.train_stack(cfg, [8], [d], [z], 6, interrupted, eval_at=[3], checkpoint=str(ckpt))
    assert not ckpt.exists()
    assert set(resumed) == {3, 6}
    np.testing.assert_allclose(resumed[3], straight[3], rtol=1e-5)
    np.testing.assert_allclose(resumed[6], straight[6], rtol=1e-5)


def test_train_stack_rejects_corrupt_checkpoint(tmp_path):
    ckpt = tmp_path / "bad.pt"
    ckpt.write_bytes(b"not a checkpoint")
    d, z = _data(0, 50)
    with pytest.raises(ValueError, match="corrupt"):
        gan.train_stack(_cfg(), [1], [d], [z], 2, lambda t: [0], checkpoint=str(ckpt))


def test_without_torch(monkeypatch):
    monkeypatch.setitem(sys.modules, "torch", None)
    monkeypatch.delitem(sys.modules, "qboson.experiments.gan", raising=False)
    with pytest.raises(ImportError, match=r"qboson\[torch\]"):
        importlib.import_module("qboson.experiments.gan")


class _WritesMarker:
    """Unpickling this calls open(marker, "w"): the stand-in for code in a hostile checkpoint."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


def test_stack_checkpoint_is_not_executed(tmp_path):
    marker = tmp_path / "executed"
    ckpt = tmp_path / "stack.pt"
    torch.save({"trainer": _WritesMarker(marker), "real": [], "latent": [], "evaluations": {}}, ckpt)
    d, z = _data(0, 50)
    with pytest.raises(ValueError, match="stack.pt"):
        gan.train_stack(_cfg(), [1], [d], [z], 2, lambda t: [0], checkpoint=str(ckpt))
    assert not marker.exists()
    assert ckpt.exists()  # a file qboson cannot read is left alone


def test_stack_checkpoint_loads_without_pickled_objects(tmp_path):
    cfg = _cfg()
    d, z = _data(3, 200)
    ckpt = tmp_path / "stack.pt"

    def stop_at_2(trainer):
        if trainer.iterations == 2:
            raise KeyboardInterrupt
        return [float(trainer.iterations)]

    with pytest.raises(KeyboardInterrupt):
        gan.train_stack(cfg, [8], [d], [z], 4, stop_at_2, eval_at=[1, 2], checkpoint=str(ckpt), checkpoint_every_s=0)
    state = torch.load(ckpt, weights_only=True)  # raises if anything in it needs unpickling code
    assert state["trainer"]["iterations"] == 1 and json.loads(state["evaluations"]) == {"1": [1.0]}


def test_bf16_precision_is_opt_in_and_trains_close_to_fp32():
    with pytest.raises(ValueError, match="precision"):
        _cfg(precision="fp16")
    assert "precision" not in _cfg().to_dict()  # fp32 checkpoints from before the setting still match
    d1, z1 = _data(1)
    runs = {}
    for precision in ("fp32", "bf16"):
        cfg = _cfg(optimizer="adam", hidden=(64, 64), precision=precision)
        trainer = gan.GanTrainer(cfg, [21])
        stats = trainer.train(5, gan.StackedSampler([d1], [21]), gan.StackedSampler([z1], [21], purpose=3))
        assert all(math.isfinite(v) for v in stats.critic_loss + stats.penalty + stats.generator_loss)
        runs[precision] = trainer
    w32, w16 = runs["fp32"].generator.weights[0], runs["bf16"].generator.weights[0]
    assert w16.dtype == torch.float32  # parameters stay float32
    assert not torch.equal(w32, w16)  # bf16 really was used
    fresh = gan.GanTrainer(_cfg(optimizer="adam", hidden=(64, 64)), [21])
    init = fresh.generator.weights[0]
    # 5 Adam steps of lr 1e-3 move the weights; bf16 rounding bends that path only a little (Adam's
    # sign-like early steps flip a few weights whose gradients are near zero: compare norms, not maxima)
    assert (w32 - w16).norm() < 0.3 * (w32 - init).norm()
    z = torch.as_tensor(z1[None, :200])
    g32, g16 = runs["fp32"].generate(z), runs["bf16"].generate(z)
    assert (g32 - g16).norm() < 0.3 * (g32 - fresh.generate(z)).norm()
    # a bf16 run does not resume from an fp32 checkpoint (other settings)
    with pytest.raises(ValueError, match="other member seeds or settings"):
        runs["bf16"].load_state_dict(runs["fp32"].state_dict())
