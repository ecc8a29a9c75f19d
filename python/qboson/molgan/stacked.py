"""Several MolGAN runs in one process, their weights stacked along a leading axis.

``K`` runs with the same architecture and batch size (they may differ in seed and
latent) are trained by one loop: every layer of the ``K`` generators is one batched
product (``torch.bmm`` / ``torch.baddbmm`` over a ``(K, ...)`` weight), so are the
R-GCN critics' and the per-sample gradient penalty's.  The runs never interact:

* each run is set up by :func:`qboson.molgan.trainer.open_run`, exactly as
  :func:`~qboson.molgan.trainer.train` sets it up (weights, data order, augmentation,
  latent order and Gumbel / interpolation noise from its own seed);
* the loss is the sum of the runs' losses, so each run's gradient is its own, and Adam
  acts elementwise, so one Adam over stacked parameters equals one Adam per run.

A run trained in a stack therefore equals the same run trained alone up to float
summation order inside the batched products.  A stacked run's ``train_seconds`` and
``elapsed_s`` are the stack's wall time (all runs advance together).  Each run keeps its ordinary run folder
(``config.json``, ``latent_bank.npy``, ``checkpoint.pt`` in the single-run format,
``metrics.csv``, ``curve.csv``): ``qboson evaluate`` reads it and ``train(resume=True)``
may continue it alone.

Shapes: a stack of ``K`` batches of ``B`` graphs is ``edges (K, B, N, N, R)`` and
``nodes (K, B, N, A)``; latents ``(K, B, dim)``; scores and losses ``(K, B)`` / ``(K,)``.
"""

from __future__ import annotations

import os
import time
from typing import Any, Callable, Optional, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .._fpenv import flushed_subnormals
from .._heap import retained_heap
from .._lookup16 import sigmoid, tanh
from .batches import GraphData, real_batches
from .config import TrainConfig
from .model import Discriminator, Generator, autocast_dtype, graph_bmm, gumbel_noise, relax_with_noise
from .trainer import (Evaluator, RunState, _bar, _curve_schedule, _iteration, forward_precision,
                      open_run, resolve_device)
from .runfiles import LossWindow, stop_on_sigint

__all__ = ["StackedGenerator", "StackedDiscriminator", "stacked_gradient_penalty", "train_stack",
           "stack_adam_states", "unstack_adam_state", "STACKABLE_FIELDS"]

#: config fields in which the runs of one stack may differ
STACKABLE_FIELDS = frozenset({"seed", "latent", "latent_bank_path", "extra"})


class _Stacked(nn.Module):
    """``K`` copies of one module's parameters, each stacked along a new leading axis.

    Parameter ``i`` here is parameter ``i`` of the single module with shape ``(K, *shape)``,
    so single-run state dicts and optimiser states map one to one.
    """

    def __init__(self, members: Sequence[nn.Module]) -> None:
        super().__init__()
        if not members:
            raise ValueError("a stack needs at least one member")
        self.names = [n for n, _ in members[0].named_parameters()]
        shapes = [tuple(p.shape) for _, p in members[0].named_parameters()]
        for m in members[1:]:
            if [(n, tuple(p.shape)) for n, p in m.named_parameters()] != list(zip(self.names, shapes)):
                raise ValueError("the members of a stack must have the same architecture")
        self.stacked = nn.ParameterList([
            nn.Parameter(torch.stack([dict(m.named_parameters())[n].detach() for m in members]))
            for n in self.names])

    @property
    def members(self) -> int:
        return int(self.stacked[0].shape[0])

    def _p(self) -> dict[str, torch.Tensor]:
        return dict(zip(self.names, self.stacked))

    def member_state_dict(self, k: int) -> dict[str, torch.Tensor]:
        """Member ``k``'s parameters as the single module's ``state_dict`` (copies)."""
        return {n: p[k].detach().clone() for n, p in zip(self.names, self.stacked)}

    @torch.no_grad()
    def load_member_state_dict(self, k: int, state: dict[str, torch.Tensor]) -> None:
        """Overwrite member ``k`` with a single module's ``state_dict``."""
        if set(state) != set(self.names):
            raise ValueError(f"state dict keys {sorted(state)} do not match {sorted(self.names)}")
        for n, p in zip(self.names, self.stacked):
            p[k].copy_(state[n])


def _linear(x: torch.Tensor, w: torch.Tensor, b: Optional[torch.Tensor] = None) -> torch.Tensor:
    """``x (K, M, in) @ w (K, out, in)^T + b (K, out)``: K ``nn.Linear`` layers in one product."""
    if b is None:
        return torch.bmm(x, w.transpose(1, 2))
    return torch.baddbmm(b.unsqueeze(1), x, w.transpose(1, 2))


class StackedGenerator(_Stacked):
    """``K`` :class:`~qboson.molgan.model.Generator` s: ``z (K, B, dim) -> edge logits (K, B, N, N, R),
    node logits (K, B, N, A)``, each member computing what its single generator computes."""

    def __init__(self, members: Sequence[Generator]) -> None:
        super().__init__(members)
        g = members[0]
        self.dim, self.widths, self.negative_slope = g.dim, g.widths, g.negative_slope
        self.n_nodes, self.n_atom_types, self.n_bond_types = g.n_nodes, g.n_atom_types, g.n_bond_types
        self._head_cache: Optional[tuple[tuple, tuple[torch.Tensor, torch.Tensor]]] = None

    def forward(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        K = self.members
        if z.dim() != 3 or z.shape[0] != K or z.shape[2] != self.dim:
            raise ValueError(f"z must have shape ({K}, batch, {self.dim}), got {tuple(z.shape)}")
        p, L, b, n = self._p(), len(self.widths), z.shape[1], self.n_nodes
        # every layer's A_k z + b_k in one product (z feeds all layers)
        zw = torch.cat([p[f"z_maps.{i}.weight"] for i in range(L)], dim=1)
        zb = torch.cat([p[f"z_maps.{i}.bias"] for i in range(L)], dim=1)
        zs = _linear(z, zw, zb).split(list(self.widths), dim=-1)
        h = F.leaky_relu(zs[0], self.negative_slope)
        for i in range(1, L):
            h = F.leaky_relu(_linear(h, p[f"h_maps.{i - 1}.weight"]) + zs[i], self.negative_slope)
        out = _linear(h, *self._head(p, z.device))
        r = self.n_bond_types
        edges, nodes = out.split([n * n * r, n * self.n_atom_types], dim=-1)  # split, not slices: cheaper backward
        return edges.reshape(K, b, n, n, r), nodes.reshape(K, b, n, self.n_atom_types)

    def _head(self, p: dict[str, torch.Tensor], device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
        """Both heads' weights ``(K, N*N*R + N*A, width)`` and biases, edges symmetrised.

        The single generator symmetrises its edge logits and overwrites the diagonal with a "no
        bond" margin.  Both are linear in the head, so here they are applied to the head's
        (N*N*R, width) weights instead of the (B, N*N*R) logits: w_ij <- (w_ij + w_ji) / 2, and
        on the diagonal zero weights with the margin as bias (h . 0 + 1e4 is exactly 1e4).  The
        weights' transpose reads rows of `width` floats where the logits' reads runs of R, and
        no (B, N, N, R) gradient is symmetrised: the head's forward and backward took 14 % less
        time at K = 16, B = 256, bf16.  Both heads are then one product.

        Without autograd (the critic updates' fakes) the result, cast as autocast would cast it,
        is kept until a head parameter changes (Adam steps in place, which bumps ``_version``):
        four of every five critic updates reuse it, bit for bit the same weights.
        """
        names = ("edge_head.weight", "edge_head.bias", "node_head.weight", "node_head.bias")
        cast = autocast_dtype(device.type)
        key = None
        if not torch.is_grad_enabled():
            key = tuple((p[k].data_ptr(), p[k]._version) for k in names) + (cast,)
            if self._head_cache is not None and self._head_cache[0] == key:
                return self._head_cache[1]
        K, n, r = self.members, self.n_nodes, self.n_bond_types
        w_edge = p["edge_head.weight"].view(K, n, n, r, -1)
        b_edge = p["edge_head.bias"].view(K, n, n, r)
        eye = torch.eye(n, dtype=torch.bool, device=device).view(1, n, n, 1)
        diag_fill = torch.full((r,), -1e4, dtype=b_edge.dtype, device=device)
        diag_fill[0] = 1e4
        w_edge = (0.5 * (w_edge + w_edge.transpose(1, 2))).masked_fill(eye.unsqueeze(-1), 0.0)
        b_edge = torch.where(eye, diag_fill, 0.5 * (b_edge + b_edge.transpose(1, 2)))
        head = (torch.cat([w_edge.reshape(K, n * n * r, -1), p["node_head.weight"]], dim=1),
                torch.cat([b_edge.reshape(K, n * n * r), p["node_head.bias"]], dim=1))
        if key is not None:
            if cast is not None:
                head = (head[0].to(cast), head[1].to(cast))
            self._head_cache = (key, head)
        return head


class StackedDiscriminator(_Stacked):
    """``K`` :class:`~qboson.molgan.model.Discriminator` s: ``(edges (K, B, N, N, R), nodes (K, B, N, A))
    -> scores (K, B)``.  Per layer, the neighbour sum of all ``K * B`` graphs is one ``bmm``, taken
    before the weights where the layer's input is narrower than its output (then the self and all
    bond-type maps are one product) and after them otherwise.  Same function as the single
    critics, other float summation order."""

    def __init__(self, members: Sequence[Discriminator]) -> None:
        super().__init__(members)
        d = members[0]
        self.n_atom_types, self.n_bond_types, self.n_rel = d.n_atom_types, d.n_bond_types, d.n_rel
        self.n_conv = len(d.self_maps)
        self.n_head = sum(isinstance(m, nn.Linear) for m in d.head)

    def forward(self, edges: torch.Tensor, nodes: torch.Tensor) -> torch.Tensor:
        K = self.members
        if edges.dim() != 5 or edges.shape[0] != K or edges.shape[-1] != self.n_bond_types:
            raise ValueError(f"edges must have shape ({K}, batch, N, N, {self.n_bond_types}), got {tuple(edges.shape)}")
        if nodes.dim() != 4 or nodes.shape[-1] != self.n_atom_types or nodes.shape[:3] != edges.shape[:3]:
            raise ValueError(f"nodes must have shape ({K}, batch, N, {self.n_atom_types}), got {tuple(nodes.shape)}")
        p, b, n, r = self._p(), nodes.shape[1], nodes.shape[2], self.n_rel
        x = nodes.reshape(K * b, n, self.n_atom_types)
        bonds = edges[..., 1:]
        # Under autocast each layout of the adjacency is cast while it is copied (one pass, not a float32
        # copy and then a cast); each keeps its own cast, so their gradients still meet in float32.
        product_dtype = autocast_dtype(edges.device.type) or bonds.dtype
        adj = adj_t = None
        h = x
        for i in range(self.n_conv):
            w_self, w_bond, bias = p[f"self_maps.{i}.weight"], p[f"bond_maps.{i}.weight"], p[f"self_maps.{i}.bias"]
            d_out, d_in = w_self.shape[1], w_self.shape[2]
            if d_in < d_out:
                # narrow input: sum over neighbours first, sum_j E[i,j,y] h_j (K*B, N, R-1, d_in), then one
                # product by [W_1 .. W_{R-1}, W_0]; the (R-1) * d_in wide intermediate beats (R-1) * d_out
                if adj_t is None:
                    adj_t = bonds.permute(0, 1, 4, 2, 3).to(product_dtype).reshape(K * b, r * n, n)  # (K*B, (y, i), j)
                agg = graph_bmm(adj_t, h).view(K * b, r, n, d_in).transpose(1, 2).reshape(K, b * n, r * d_in)
                w = torch.cat([w_bond.view(K, r, d_out, d_in).transpose(1, 2).reshape(K, d_out, r * d_in), w_self],
                              dim=2)
                pre = _linear(torch.cat([agg, h.view(K, b * n, d_in)], dim=-1), w, bias)
            else:
                # wide input: h_j W_y first (K, B*N, (R-1) * d_out), then the neighbour sum
                if adj is None:
                    adj = bonds.to(product_dtype).reshape(K * b, n, n * r)  # (K*B, i, (j, y))
                hv = h.view(K, b * n, d_in)
                msg = graph_bmm(adj, _linear(hv, w_bond).view(K * b, n * r, d_out))
                pre = _linear(hv, w_self, bias) + msg.view(K, b * n, d_out)
            pre = tanh(pre).view(K * b, n, d_out)
            h = torch.cat([pre, x.to(pre.dtype)], dim=-1)  # under bf16 autocast stay bf16 (cat would promote)
        h = h.view(K, b * n, -1)
        # gate and value as two products: one product split in two costs a concatenation of
        # their gradients in every backward pass, larger than reading h twice
        gate = _linear(h, p["gate.weight"], p["gate.bias"])
        value = _linear(h, p["value.weight"], p["value.bias"])
        out = tanh((sigmoid(gate) * tanh(value)).view(K, b, n, -1).sum(dim=2))
        for j in range(self.n_head):
            out = _linear(out, p[f"head.{2 * j}.weight"], p[f"head.{2 * j}.bias"])
            if j < self.n_head - 1:
                out = torch.tanh(out)
        return out.squeeze(-1)


def stacked_gradient_penalty(critic: StackedDiscriminator, real: tuple[torch.Tensor, torch.Tensor],
                             fake: tuple[torch.Tensor, torch.Tensor], eps: torch.Tensor,
                             precision: str = "fp32") -> torch.Tensor:
    """Per-run penalty ``(K,)``: :func:`qboson.molgan.trainer.gradient_penalty` of each run, with
    ``eps (K, B)`` and stacked real / fake graphs."""
    (real_e, real_x), (fake_e, fake_x) = real, fake
    k, b = eps.shape
    ee, ex = eps.view(k, b, 1, 1, 1), eps.view(k, b, 1, 1)
    e_hat = (ee * real_e + (1 - ee) * fake_e).requires_grad_(True)
    x_hat = (ex * real_x + (1 - ex) * fake_x).requires_grad_(True)
    with forward_precision(precision, e_hat.device):
        scores = critic(e_hat, x_hat)
    grad_e, grad_x = torch.autograd.grad(scores.float().sum(), (e_hat, x_hat), create_graph=True)
    sq = grad_e.flatten(2).pow(2).sum(2) + grad_x.flatten(2).pow(2).sum(2)
    return (sq.sqrt() - 1.0).pow(2).mean(1)


def stack_adam_states(states: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """One Adam ``state_dict`` for stacked parameters from the single runs' ones (same param order)."""
    first = states[0]
    out: dict[str, Any] = {"param_groups": first["param_groups"], "state": {}}
    if any(set(s["state"]) != set(first["state"]) for s in states):
        raise ValueError("the runs' optimisers hold state for different parameters")
    for i, st in first["state"].items():
        steps = {float(s["state"][i]["step"]) for s in states}
        if len(steps) != 1:
            raise ValueError(f"the runs' optimisers are at different steps {sorted(steps)}")
        out["state"][i] = {"step": st["step"].clone(),
                           **{k: torch.stack([s["state"][i][k] for s in states]) for k in st if k != "step"}}
    return out


def unstack_adam_state(state: dict[str, Any], k: int) -> dict[str, Any]:
    """Run ``k``'s single-run Adam ``state_dict`` from the stacked one."""
    return {"param_groups": state["param_groups"],
            "state": {i: {n: (v.clone() if n == "step" else v[k].clone()) for n, v in st.items()}
                      for i, st in state["state"].items()}}


def check_stackable(configs: Sequence[TrainConfig]) -> None:
    """``ValueError`` unless the configs differ only in :data:`STACKABLE_FIELDS`."""
    if not configs:
        raise ValueError("train_stack needs at least one config")
    bad = [type(c).__name__ for c in configs if not isinstance(c, TrainConfig)]
    if bad:
        raise TypeError(f"train_stack needs TrainConfig objects, got {', '.join(bad)}")
    ref = {k: v for k, v in configs[0].to_dict().items() if k not in STACKABLE_FIELDS}
    for c in configs[1:]:
        diff = sorted(k for k, v in c.to_dict().items() if k not in STACKABLE_FIELDS and ref[k] != v)
        if diff:
            raise ValueError(f"runs of one stack may differ only in {sorted(STACKABLE_FIELDS)}; "
                             f"these differ too: {', '.join(diff)}")


class _Stack:
    """The stacked networks and optimisers of a list of :class:`RunState` s, and the way back to them."""

    def __init__(self, runs: Sequence[RunState]) -> None:
        c, dev = runs[0].config, runs[0].device
        self.runs = list(runs)
        self.gen = StackedGenerator([r.gen for r in runs]).to(dev)
        self.critic = StackedDiscriminator([r.critic for r in runs]).to(dev)
        self.opt_g = torch.optim.Adam(self.gen.parameters(), lr=c.lr_generator, betas=c.betas)
        self.opt_d = torch.optim.Adam(self.critic.parameters(), lr=c.lr_critic, betas=c.betas)
        self.opt_g.load_state_dict(stack_adam_states([r.opt_g.state_dict() for r in runs]))
        self.opt_d.load_state_dict(stack_adam_states([r.opt_d.state_dict() for r in runs]))

    def sync_runs(self, optimisers: bool = True) -> None:
        """Copy the stacked weights (and optimiser states) into each run's single modules."""
        g_state = self.opt_g.state_dict() if optimisers else None
        d_state = self.opt_d.state_dict() if optimisers else None
        for k, r in enumerate(self.runs):
            r.gen.load_state_dict(self.gen.member_state_dict(k))
            r.critic.load_state_dict(self.critic.member_state_dict(k))
            if optimisers:
                r.opt_g.load_state_dict(unstack_adam_state(g_state, k))
                r.opt_d.load_state_dict(unstack_adam_state(d_state, k))

    def fake_graphs(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Each run's :func:`~qboson.molgan.trainer.fake_graphs`, Gumbel noise from its own generator."""
        c = self.runs[0].config
        with forward_precision(c.precision, z.device):
            edges, nodes = self.gen(z)
        edges, nodes = edges.float(), nodes.float()
        noise = None
        if c.output_mode != "softmax":
            draws = [gumbel_noise(edges[k], nodes[k], r.noise) for k, r in enumerate(self.runs)]
            noise = (torch.stack([d[0] for d in draws]), torch.stack([d[1] for d in draws]))
        return relax_with_noise(edges, nodes, c.output_mode, c.temperature, noise)

    def latents(self, batch: int) -> torch.Tensor:
        dev = self.runs[0].device
        return torch.stack([r.bank[torch.from_numpy(r.latent_stream.take(batch)).to(dev)] for r in self.runs])

    def real(self, batch: int) -> tuple[torch.Tensor, torch.Tensor]:
        c = self.runs[0].config
        return real_batches(self.runs[0].graphs, [r.real_stream.take(batch) for r in self.runs], c.permute_prob,
                            [r.augment_rng for r in self.runs])

    def critic_step(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """One critic update of every run; returns ``(critic loss, Wasserstein estimate, penalty)``, each ``(K,)``."""
        c, dev, B = self.runs[0].config, self.runs[0].device, self.runs[0].config.batch_size
        real = self.real(B)
        z = self.latents(B)
        with torch.no_grad():
            fake = self.fake_graphs(z)
        with forward_precision(c.precision, dev):
            scores = self.critic(torch.cat([real[0], fake[0]], dim=1), torch.cat([real[1], fake[1]], dim=1)).float()
        wasserstein = scores[:, :B].mean(1) - scores[:, B:].mean(1)
        eps = torch.stack([torch.rand(B, generator=r.noise, device=dev) for r in self.runs])
        gp = stacked_gradient_penalty(self.critic, real, fake, eps, c.precision)
        d_loss = -wasserstein + c.gp_weight * gp
        self.opt_d.zero_grad(set_to_none=True)
        # inputs=: no gradient for the interpolated graphs (leaves of the penalty), which nothing
        # uses; the critic's gradients are bit for bit the same and the backward pass ~4 % shorter
        d_loss.sum().backward(inputs=list(self.critic.parameters()))
        self.opt_d.step()
        return d_loss.detach(), wasserstein.detach(), gp.detach()

    def generator_step(self) -> torch.Tensor:
        """One generator update of every run on fresh latents; returns the generator losses ``(K,)``."""
        c, B = self.runs[0].config, self.runs[0].config.batch_size
        z = self.latents(B)
        self.critic.requires_grad_(False)
        fake = self.fake_graphs(z)
        with forward_precision(c.precision, z.device):
            g_loss = -self.critic(*fake).float().mean(1)
        self.opt_g.zero_grad(set_to_none=True)
        g_loss.sum().backward()
        self.opt_g.step()
        self.critic.requires_grad_(True)
        return g_loss.detach()


def train_stack(
    configs: Sequence[TrainConfig],
    out_dirs: Sequence[str | os.PathLike],
    *,
    resume: bool = False,
    data: Optional[GraphData] = None,
    latent_banks: Optional[Sequence[Optional[np.ndarray]]] = None,
    progress: bool = True,
    stop_after: Optional[int] = None,
    callback: Optional[Callable[[int, dict[str, Any]], None]] = None,
    evaluators: Optional[Sequence[Optional[Evaluator]]] = None,
    device: str | torch.device = "cpu",
) -> list[dict[str, Any]]:
    """Train ``K = len(configs)`` runs in one loop, run ``k`` into ``out_dirs[k]``; returns their summaries.

    The configs may differ only in ``seed``, ``latent`` and ``latent_bank_path``
    (:data:`STACKABLE_FIELDS`).  ``data`` (shared), ``latent_banks`` (one ``(M, dim)`` array or
    ``None`` per run), ``resume``, ``progress``, ``stop_after`` and ``device`` mean what they mean for
    :func:`qboson.molgan.train`; ``evaluators[k]`` is run ``k``'s curve evaluator and
    ``callback(k, row)`` receives run ``k``'s log rows.  Each run's folder is what ``train`` writes,
    so it can be evaluated or resumed alone.  Resume is bit-for-bit on CPU for the same stack; if an
    interruption left the runs' checkpoints at different steps, the lagging runs first catch up
    (as a smaller stack) to the most advanced one.
    """
    configs = list(configs)
    out_dirs = list(out_dirs)
    K = len(configs)
    if len(out_dirs) != K:
        raise ValueError(f"{K} configs but {len(out_dirs)} run folders")
    if len({os.path.abspath(d) for d in out_dirs}) != K:
        raise ValueError("each run of a stack needs its own folder")
    latent_banks = [None] * K if latent_banks is None else list(latent_banks)
    evaluators = [None] * K if evaluators is None else list(evaluators)
    if len(latent_banks) != K or len(evaluators) != K:
        raise ValueError(f"need one latent bank and one evaluator (or None) per run, for {K} runs")
    check_stackable(configs)
    dev = resolve_device(device)
    data = GraphData.qm9_train(configs[0].data_seed) if data is None else data

    runs = [open_run(c, d, resume=resume, data=data, latent_bank=b, device=dev)
            for c, d, b in zip(configs, out_dirs, latent_banks)]
    check_stackable([r.config for r in runs])  # a resumed run's saved config counts
    steps = [r.step for r in runs]
    if len(set(steps)) > 1:
        # killed between the runs' checkpoint writes: bring the lagging runs up to the others
        target = max(steps)
        lag = [k for k in range(K) if steps[k] < target]
        del runs
        limit = target if stop_after is None else min(target, stop_after)
        train_stack([configs[k] for k in lag], [out_dirs[k] for k in lag], resume=True, data=data,
                    progress=progress, stop_after=limit, callback=None if callback is None else
                    (lambda j, row: callback(lag[j], row)), evaluators=[evaluators[k] for k in lag], device=dev)
        runs = [open_run(c, d, resume=True, data=data, device=dev) for c, d in zip(configs, out_dirs)]
        if len({r.step for r in runs}) > 1:  # stopped before catching up
            return [_stopped(r) for r in runs]
    for r in runs[1:]:
        r.graphs = runs[0].graphs  # one copy of the graphs on the device
    return _loop(runs, progress=progress, stop_after=stop_after, callback=callback, evaluators=evaluators)


def _stopped(run: RunState) -> dict[str, Any]:
    return {"finished": False, "critic_step": run.step, "iteration": _iteration(run.config, run.step)}


def _loop(runs: list[RunState], *, progress: bool, stop_after: Optional[int],
          callback: Optional[Callable[[int, dict[str, Any]], None]],
          evaluators: Sequence[Optional[Evaluator]]) -> list[dict[str, Any]]:
    """The loop of :func:`qboson.molgan.trainer.train`, for all runs at once."""
    config, dev, K = runs[0].config, runs[0].device, len(runs)
    stack = _Stack(runs)
    step, elapsed = runs[0].step, [r.elapsed for r in runs]
    total = config.critic_steps
    per_iter = config.n_critic if config.iteration_unit == "generator" else 1
    curve_at = _curve_schedule(config)

    def checkpoint() -> None:
        stack.sync_runs()
        for k, r in enumerate(runs):
            r.step, r.elapsed = step, elapsed[k]
            r.checkpoint()

    label = config.replace(latent=f"stack of {K}", seed=runs[0].config.seed)
    with stop_on_sigint() as flag, flushed_subnormals(config.flush_denormal and dev.type == "cpu"), \
            retained_heap(dev.type == "cpu"), \
            _bar(label, step, progress) as bar:
        while step < total:
            t0 = time.perf_counter()
            d_loss, wasserstein, gp = stack.critic_step()
            step += 1
            if step % config.n_critic == 0:
                g_loss = stack.generator_step().tolist()
                for r, g in zip(runs, g_loss):
                    r.window.add_generator(g)
            for r, d, w, p in zip(runs, d_loss.tolist(), wasserstein.tolist(), gp.tolist()):
                r.window.add_critic(d, w, p)
            dt = time.perf_counter() - t0
            elapsed = [e + dt for e in elapsed]

            if step % per_iter == 0:
                bar.update(1)
                iteration = step // per_iter
                if iteration % config.log_every == 0 or step == total:
                    for k, r in enumerate(runs):
                        row = r.window.row(iteration, step, elapsed[k])
                        r.rows.append(row)
                        r.window = LossWindow()
                        if callback is not None:
                            callback(k, row)
                evaluated = iteration in curve_at and any(e is not None for e in evaluators)
                if evaluated:
                    stack.sync_runs(optimisers=False)
                    for r, evaluator in zip(runs, evaluators):
                        if evaluator is None:
                            continue
                        r.gen.eval()
                        for point in evaluator(r.gen, iteration, step):
                            r.curve.append({**point, "iteration": iteration, "critic_step": step,
                                            "fraction": round(iteration / config.iterations, 4)})
                        r.gen.train()
                if evaluated or iteration % config.checkpoint_every == 0 or step == total:
                    checkpoint()
            if flag["stop"] or (stop_after is not None and step >= stop_after):
                checkpoint()
                return [_stopped(r) for r in runs]
    return [r.summary({"stack": K}) for r in runs]
