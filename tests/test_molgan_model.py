"""MolGAN networks: shapes, symmetry, invertibility, the R-GCN layer and the gradient penalty."""

from __future__ import annotations

import importlib
import sys

import pytest

torch = pytest.importorskip("torch")

from qboson.molgan.model import Discriminator, Generator, graph_bmm  # noqa: E402
from qboson.molgan import gradient_penalty  # noqa: E402


def _random_graphs(b: int, n: int = 9, a: int = 5, r: int = 4, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    adj = torch.randint(0, r, (b, n, n), generator=g)
    adj = torch.triu(adj, diagonal=1)
    adj = adj + adj.transpose(1, 2)
    nodes = torch.randint(0, a, (b, n), generator=g)
    return torch.nn.functional.one_hot(adj, r).float(), torch.nn.functional.one_hot(nodes, a).float()


def test_generator_shapes_and_symmetry():
    torch.manual_seed(0)
    gen = Generator(16)
    z = torch.randn(7, 16)
    edges, nodes = gen(z)
    assert edges.shape == (7, 9, 9, 4) and nodes.shape == (7, 9, 5)
    assert torch.equal(edges, edges.transpose(1, 2))
    # the diagonal always decodes to "no bond"
    assert (edges.argmax(-1).diagonal(dim1=1, dim2=2) == 0).all()
    assert [h.shape[1] for h in gen.hidden(z)] == [64, 176, 288, 400, 512]


@pytest.mark.parametrize("mode", ["softmax", "gumbel", "gumbel_hard"])
def test_generator_graph_modes(mode):
    torch.manual_seed(1)
    gen = Generator(8)
    z = torch.randn(5, 8, requires_grad=True)
    e, x = gen.graphs(z, mode=mode, generator=torch.Generator().manual_seed(3))
    assert torch.allclose(e.sum(-1), torch.ones(5, 9, 9), atol=1e-5)
    assert torch.allclose(x.sum(-1), torch.ones(5, 9), atol=1e-5)
    assert torch.allclose(e, e.transpose(1, 2))  # Gumbel noise is symmetrised too
    if mode == "gumbel_hard":
        assert torch.allclose(e, e.round(), atol=1e-6) and torch.allclose(x, x.round(), atol=1e-6)
    e.sum().backward() if mode != "softmax" else (e * torch.arange(4.0)).sum().backward()
    assert z.grad is not None and torch.isfinite(z.grad).all()
    # noise comes from the given generator only
    if mode != "softmax":
        e2, _ = gen.graphs(z, mode=mode, generator=torch.Generator().manual_seed(3))
        e3, _ = gen.graphs(z, mode=mode, generator=torch.Generator().manual_seed(4))
        assert torch.equal(e, e2) and not torch.equal(e, e3)


def test_generator_rejects_bad_input():
    gen = Generator(4)
    with pytest.raises(ValueError, match="shape"):
        gen(torch.zeros(3, 5))
    with pytest.raises(ValueError, match="output mode"):
        gen.graphs(torch.zeros(3, 4), mode="argmax")
    with pytest.raises(ValueError, match="invertible"):
        Generator(4, negative_slope=0.0)


@pytest.mark.parametrize("layer", [0, 1, 2, 3, 4])
def test_invert_recovers_z(layer):
    torch.manual_seed(2)
    gen = Generator(16)
    with torch.no_grad():  # move away from the initialisation, as training would
        for p in gen.parameters():
            p.add_(0.05 * torch.randn_like(p))
    z = torch.randn(64, 16) * 2.0
    hidden = gen.hidden(z)[layer]
    z_rec = gen.invert(hidden, layer=layer)
    assert z_rec.shape == z.shape and z_rec.dtype == z.dtype
    assert (z_rec - z).abs().max().item() < 1e-4
    # and it is not a constant answer: a different hidden state gives a different z
    assert (gen.invert(gen.hidden(z + 1.0)[layer], layer=layer) - z).abs().max() > 0.5


def test_invert_refuses_narrow_layer():
    gen = Generator(16, widths=(16, 20))
    with pytest.raises(ValueError, match="not invertible"):
        gen.invert(torch.zeros(2, 20), layer=1)
    with pytest.raises(ValueError, match="shape"):
        gen.invert(torch.zeros(2, 7), layer=0)


def _reference_critic(critic: Discriminator, edges: torch.Tensor, nodes: torch.Tensor) -> torch.Tensor:
    """The R-GCN written out with one loop per bond type and per graph (no fused contraction)."""
    out = []
    n_rel = critic.n_rel
    for b in range(edges.shape[0]):
        x = nodes[b]
        h = x
        for self_map, bond_map in zip(critic.self_maps, critic.bond_maps):
            d = self_map.out_features
            total = self_map(h)
            for y in range(n_rel):
                w_y = bond_map.weight[y * d:(y + 1) * d]  # (d, d_in): the weight of bond type y + 1
                total = total + edges[b, :, :, y + 1] @ (h @ w_y.T)
            h = torch.cat([torch.tanh(total), x], dim=-1)
        gate = torch.sigmoid(critic.gate(h))
        value = torch.tanh(critic.value(h))
        out.append(critic.head(torch.tanh((gate * value).sum(0))))
    return torch.cat(out)


def test_critic_matches_loop_reference_and_is_permutation_invariant():
    torch.manual_seed(3)
    critic = Discriminator()
    e, x = _random_graphs(6)
    scores = critic(e, x)
    assert scores.shape == (6,)
    assert torch.allclose(scores, _reference_critic(critic, e, x), atol=1e-5)
    perm = torch.randperm(9)
    permuted = critic(e[:, perm][:, :, perm], x[:, perm])
    assert torch.allclose(scores, permuted, atol=1e-5)
    # the bond types are distinguished: turning single bonds into double bonds changes the score
    e2 = e.clone()
    e2[..., 2] += e2[..., 1]
    e2[..., 1] = 0
    assert (critic(e2, x) - scores).abs().max() > 1e-4


def test_critic_rejects_bad_shapes():
    critic = Discriminator()
    e, x = _random_graphs(2)
    with pytest.raises(ValueError, match="edges"):
        critic(e[..., :3], x)
    with pytest.raises(ValueError, match="nodes"):
        critic(e, x[:1])


def test_gradient_penalty_matches_per_sample_computation():
    torch.manual_seed(4)
    critic = Discriminator(conv_dims=(16, 8), aggregation_dim=16, mlp_dims=(16,))
    real = _random_graphs(5, seed=1)
    fake = tuple(torch.softmax(torch.randn_like(t), -1) for t in _random_graphs(5, seed=2))
    eps = torch.rand(5)
    gp = gradient_penalty(critic, real, fake, eps)
    grads = torch.autograd.grad(gp, list(critic.parameters()), allow_unused=True)

    # independent: one sample at a time, gradient of its own score w.r.t. its own inputs
    terms = []
    for b in range(5):
        e = (eps[b] * real[0][b:b + 1] + (1 - eps[b]) * fake[0][b:b + 1]).requires_grad_(True)
        x = (eps[b] * real[1][b:b + 1] + (1 - eps[b]) * fake[1][b:b + 1]).requires_grad_(True)
        ge, gx = torch.autograd.grad(critic(e, x).sum(), (e, x), create_graph=True)
        norm = torch.sqrt((ge ** 2).sum() + (gx ** 2).sum())
        terms.append((norm - 1) ** 2)
    expected = torch.stack(terms).mean()
    assert torch.allclose(gp, expected, rtol=1e-5, atol=1e-7)
    expected_grads = torch.autograd.grad(expected, list(critic.parameters()), allow_unused=True)
    for g1, g2 in zip(grads, expected_grads):  # None: the output bias does not enter the penalty
        assert (g1 is None and g2 is None) or torch.allclose(g1, g2, rtol=1e-4, atol=1e-7)
    assert gp.item() > 0


def test_gradient_penalty_is_per_sample_not_batch_norm():
    """A batch-level norm (one norm over the whole batch) would give a different value."""
    torch.manual_seed(5)
    critic = Discriminator(conv_dims=(8,), aggregation_dim=8, mlp_dims=())
    real, fake = _random_graphs(4, seed=3), _random_graphs(4, seed=4)
    eps = torch.full((4,), 0.5)
    gp = gradient_penalty(critic, real, fake, eps)
    e = (0.5 * real[0] + 0.5 * fake[0]).requires_grad_(True)
    x = (0.5 * real[1] + 0.5 * fake[1]).requires_grad_(True)
    ge, gx = torch.autograd.grad(critic(e, x).sum(), (e, x))
    batch_norm = torch.sqrt((ge ** 2).sum() + (gx ** 2).sum())
    assert not torch.isclose(gp, (batch_norm - 1) ** 2)


@pytest.mark.parametrize("autocast", [False, True])
def test_graph_bmm_gives_bmm_values_and_gradients_contiguously(autocast):
    # as in the critic: a float32 adjacency times features, differentiated twice (gradient penalty)
    g = torch.Generator().manual_seed(0)
    a0 = torch.rand(6, 9, 27, generator=g)
    b0 = torch.randn(6, 27, 16, generator=g)
    w = torch.randn(6, 9, 16, generator=g)

    def run(product):
        a, b = a0.clone().requires_grad_(True), b0.clone().requires_grad_(True)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast):
            out = product(a, b)
        ga, gb = torch.autograd.grad((out.float() * w).sum(), (a, b), create_graph=True)
        penalty = (ga.float() ** 2).sum() + (gb.float() ** 2).sum()
        gga, ggb = torch.autograd.grad(penalty, (a, b))
        return out, ga, gb, gga, ggb

    ours, theirs = run(graph_bmm), run(torch.bmm)
    assert ours[0].dtype == (torch.bfloat16 if autocast else torch.float32)
    for x, y in zip(ours, theirs):
        assert x.dtype == y.dtype and torch.equal(x, y)
    assert all(t.is_contiguous() for t in ours[1:])


def test_without_torch(monkeypatch):
    for name in [m for m in sys.modules if m.startswith("qboson.molgan")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "torch", None)
    with pytest.raises(ImportError, match=r"qboson\[torch\]"):
        importlib.import_module("qboson.molgan")


def test_relaxed_probabilities_are_never_subnormal():
    # regression: a sharp generator's softmax gave subnormal probabilities, on which torch's CPU exp
    # (and every product after it) ran tens of times slower; the floor keeps them normal floats
    from qboson.molgan.model import _softmax_last

    g = torch.Generator().manual_seed(0)
    logits = torch.randn(64, 9, 9, 5, generator=g) * 300.0  # many classes 100+ below the top one
    logits.requires_grad_(True)
    p = _softmax_last(logits)
    tiny = torch.finfo(torch.float32).tiny
    assert bool(((p == 0) | (p >= tiny)).all()) and bool((p > 0).all())
    ref = torch.softmax(logits.double(), -1)
    torch.testing.assert_close(p.double(), ref, rtol=1e-5, atol=1e-34)
    # gradients agree with torch's softmax to float rounding
    w = torch.randn(p.shape, generator=g)
    (gp,) = torch.autograd.grad((p * w).sum(), logits)
    (gr,) = torch.autograd.grad((torch.softmax(logits, -1) * w).sum(), logits)
    torch.testing.assert_close(gp, gr, rtol=1e-5, atol=1e-6)
