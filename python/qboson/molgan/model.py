"""MolGAN networks: a widening MLP generator with ``invert`` and a relational-GCN critic.

Graphs are dense, as in MolGAN: ``N`` nodes (9 for QM9), ``A`` atom classes
(index 0 = padding) and ``R`` bond classes (index 0 = no bond).  Tensors:

* nodes: ``(B, N, A)`` float, one-hot for real graphs, probabilities (or
  relaxed one-hots) for generated ones;
* edges: ``(B, N, N, R)`` float, symmetric in the two node axes, with the
  "no bond" class on the diagonal.

The generator follows the paper (arXiv 2508.19857, App. E): hidden widths
64, 176, 288, 400, 512, LeakyReLU, and an affine transform of ``z`` added to
every hidden layer, ``h_{k+1} = act(W_k h_k + A_k z + b_k)``.  Because the widths
never decrease and LeakyReLU is invertible, ``z`` can be recovered from any
hidden layer (:meth:`Generator.invert`), the condition of the paper's Theorem 1.
"""

from __future__ import annotations

from typing import Optional, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from .._lookup16 import sigmoid, tanh

__all__ = ["Generator", "Discriminator", "GENERATOR_WIDTHS", "OUTPUT_MODES", "init_weights", "decode_graphs"]

#: hidden widths of the paper's generator
GENERATOR_WIDTHS = (64, 176, 288, 400, 512)
#: how :meth:`Generator.graphs` turns logits into the tensors the critic sees
OUTPUT_MODES = ("softmax", "gumbel", "gumbel_hard")


class Generator(nn.Module):
    """``z (B, dim) -> (edge logits (B, N, N, R), node logits (B, N, A))``.

    Parameters
    ----------
    dim : latent dimension.
    n_nodes, n_atom_types, n_bond_types : graph size and class counts (with
        padding / no-bond classes included).
    widths : hidden widths; must be non-decreasing and start at ``>= dim`` for
        :meth:`invert` to be exact.
    negative_slope : LeakyReLU slope (> 0 keeps the activation invertible).
    """

    def __init__(
        self,
        dim: int,
        n_nodes: int = 9,
        n_atom_types: int = 5,
        n_bond_types: int = 4,
        widths: Sequence[int] = GENERATOR_WIDTHS,
        negative_slope: float = 0.2,
    ) -> None:
        super().__init__()
        widths = tuple(int(w) for w in widths)
        if dim < 1:
            raise ValueError(f"latent dim must be >= 1, got {dim}")
        if not widths:
            raise ValueError("the generator needs at least one hidden layer")
        if not 0.0 < negative_slope < 1.0:
            raise ValueError(f"negative_slope must be in (0, 1) to keep LeakyReLU invertible, got {negative_slope}")
        self.dim = int(dim)
        self.n_nodes, self.n_atom_types, self.n_bond_types = int(n_nodes), int(n_atom_types), int(n_bond_types)
        self.widths = widths
        self.negative_slope = float(negative_slope)
        # layer k: h_{k+1} = act(W_k h_k + A_k z + b_k); for k = 0 there is no h_0, only A_0 z + b_0
        self.z_maps = nn.ModuleList([nn.Linear(self.dim, w) for w in widths])  # A_k, b_k
        self.h_maps = nn.ModuleList([nn.Linear(a, b, bias=False) for a, b in zip(widths[:-1], widths[1:])])  # W_k
        self.edge_head = nn.Linear(widths[-1], n_nodes * n_nodes * n_bond_types)
        self.node_head = nn.Linear(widths[-1], n_nodes * n_atom_types)

    def hidden(self, z: torch.Tensor) -> list[torch.Tensor]:
        """All hidden layers for ``z (B, dim)``: a list of ``(B, widths[k])`` tensors."""
        if z.dim() != 2 or z.shape[1] != self.dim:
            raise ValueError(f"z must have shape (batch, {self.dim}), got {tuple(z.shape)}")
        h = F.leaky_relu(self.z_maps[0](z), self.negative_slope)
        out = [h]
        for w_map, z_map in zip(self.h_maps, self.z_maps[1:]):
            h = F.leaky_relu(w_map(h) + z_map(z), self.negative_slope)
            out.append(h)
        return out

    def forward(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Edge logits ``(B, N, N, R)`` (symmetric, diagonal forced to "no bond") and node logits ``(B, N, A)``."""
        h = self.hidden(z)[-1]
        b, n = z.shape[0], self.n_nodes
        edges = self.edge_head(h).view(b, n, n, self.n_bond_types)
        edges = 0.5 * (edges + edges.transpose(1, 2))
        # a node is never bonded to itself: put a large margin on "no bond" along the diagonal
        eye = torch.eye(n, dtype=torch.bool, device=z.device).view(1, n, n, 1)
        diag_fill = torch.full((self.n_bond_types,), -1e4, dtype=edges.dtype, device=z.device)
        diag_fill[0] = 1e4
        edges = torch.where(eye, diag_fill, edges)
        nodes = self.node_head(h).view(b, n, self.n_atom_types)
        return edges, nodes

    def graphs(
        self,
        z: torch.Tensor,
        mode: str = "softmax",
        temperature: float = 1.0,
        generator: torch.Generator | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """The tensors the critic sees: edges ``(B, N, N, R)`` and nodes ``(B, N, A)``, each summing to 1 over classes.

        ``mode``: "softmax" (deterministic), "gumbel" (relaxed Gumbel-softmax) or
        "gumbel_hard" (one-hot forward, straight-through gradient).  Gumbel noise is
        drawn from ``generator`` (a ``torch.Generator``) so runs are reproducible.
        Edge noise is symmetrised so that sampled graphs stay undirected.
        """
        edges, nodes = self(z)
        return relax(edges, nodes, mode, temperature, generator)

    @torch.no_grad()
    def invert(self, hidden: torch.Tensor, layer: int = -1) -> torch.Tensor:
        """Recover ``z (B, dim)`` from the activations ``hidden (B, widths[layer])`` of hidden layer ``layer``.

        Undo the LeakyReLU, then solve the layer's affine map for its inputs in
        float64 least squares: ``A_0 z = pre_0 - b_0`` for the first layer, and
        ``[W_k A_k] [h_k; z] = pre_k - b_k`` for a later one (``h_k`` and ``z``
        together).  The stacked matrix has full column rank for generic weights
        because the widths never decrease (``widths[k] >= widths[k-1] + dim`` is
        needed for an exact solve; the paper's widths satisfy it), so ``z`` is
        recovered exactly up to round-off.  Raises ``ValueError`` if the layer is
        too narrow to be inverted.
        """
        n_layers = len(self.widths)
        layer = layer % n_layers
        if hidden.dim() != 2 or hidden.shape[1] != self.widths[layer]:
            raise ValueError(f"hidden layer {layer} has shape (batch, {self.widths[layer]}), got {tuple(hidden.shape)}")
        h = hidden.double()
        pre = torch.where(h >= 0, h, h / self.negative_slope) - self.z_maps[layer].bias.double()
        a = self.z_maps[layer].weight.double()  # (w_k, dim)
        if layer > 0:
            a = torch.cat([self.h_maps[layer - 1].weight.double(), a], dim=1)  # (w_k, w_{k-1} + dim)
        if a.shape[1] > a.shape[0]:
            raise ValueError(f"layer {layer} has {a.shape[0]} units for {a.shape[1]} unknowns: not invertible")
        solution = torch.linalg.lstsq(a, pre.T).solution.T
        return solution[:, -self.dim:].to(hidden.dtype)


def init_weights(module: nn.Module, scheme: str = "default") -> None:
    """Re-initialise every ``nn.Linear`` of ``module`` in place.

    ``"default"`` keeps PyTorch's initialisation (Kaiming-uniform weights); ``"xavier"``
    draws Glorot-uniform weights and zero biases, as the original MolGAN (TensorFlow) did.
    Draws from torch's global RNG.
    """
    if scheme == "default":
        return
    if scheme != "xavier":
        raise ValueError(f"unknown init {scheme!r}; choose 'default' or 'xavier'")
    for layer in module.modules():
        if isinstance(layer, nn.Linear):
            nn.init.xavier_uniform_(layer.weight)
            if layer.bias is not None:
                nn.init.zeros_(layer.bias)


@torch.no_grad()
def decode_graphs(edges: torch.Tensor, nodes: torch.Tensor, mode: str = "argmax",
                  generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Discrete graphs from logits: ``nodes (B, N) int64`` and symmetric ``adjacency (B, N, N) int64``.

    ``mode="argmax"`` takes the most likely class; ``"sample"`` draws each atom and each bond
    (upper triangle, mirrored) from the softmax of its logits with ``generator``.  The diagonal
    is "no bond" either way.
    """
    if mode == "argmax":
        adj = edges.argmax(-1)
        atoms = nodes.argmax(-1)
    elif mode == "sample":
        b, n, _, r = edges.shape
        adj = torch.multinomial(torch.softmax(edges.reshape(-1, r).double(), -1), 1, generator=generator)
        adj = adj.view(b, n, n)
        atoms = torch.multinomial(torch.softmax(nodes.reshape(-1, nodes.shape[-1]).double(), -1), 1,
                                  generator=generator).view(b, n)
    else:
        raise ValueError(f"unknown decode mode {mode!r}; choose 'argmax' or 'sample'")
    adj = torch.triu(adj, diagonal=1)
    return atoms.long(), (adj + adj.transpose(1, 2)).long()


def relax(
    edges: torch.Tensor,
    nodes: torch.Tensor,
    mode: str = "softmax",
    temperature: float = 1.0,
    generator: torch.Generator | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Turn logits into class probabilities (see :meth:`Generator.graphs`)."""
    if mode not in OUTPUT_MODES:
        raise ValueError(f"unknown output mode {mode!r}; choose one of {', '.join(OUTPUT_MODES)}")
    if temperature <= 0:
        raise ValueError(f"temperature must be > 0, got {temperature}")
    noise = gumbel_noise(edges, nodes, generator) if mode != "softmax" else None
    return relax_with_noise(edges, nodes, mode, temperature, noise)


def gumbel_noise(edges: torch.Tensor, nodes: torch.Tensor, generator: torch.Generator | None = None
                 ) -> tuple[torch.Tensor, torch.Tensor]:
    """Gumbel noise shaped like ``edges (B, N, N, R)`` (symmetric in the node axes) and ``nodes (B, N, A)``,
    drawn from ``generator`` in that order (edges first)."""
    ge = _gumbel(edges.shape, generator, edges)
    ge = torch.triu(ge.permute(0, 3, 1, 2), diagonal=1)
    ge = (ge + ge.transpose(2, 3)).permute(0, 2, 3, 1)
    return ge, _gumbel(nodes.shape, generator, nodes)


def relax_with_noise(edges: torch.Tensor, nodes: torch.Tensor, mode: str, temperature: float,
                     noise: tuple[torch.Tensor, torch.Tensor] | None) -> tuple[torch.Tensor, torch.Tensor]:
    """:func:`relax` with the Gumbel noise given (``None`` for "softmax"); any leading batch axes."""
    if noise is not None:
        edges = edges + noise[0]
        nodes = nodes + noise[1]
    e = _softmax_last(edges / temperature)
    x = _softmax_last(nodes / temperature)
    if mode == "gumbel_hard":
        e = _straight_through(e)
        x = _straight_through(x)
    return e, x


#: lower bound of the shifted logits: exp(-80) ~ 1.8e-35 is a normal float32 (the smallest is ~1.2e-38)
_LOGIT_FLOOR = -80.0


def _softmax_last(x: torch.Tensor) -> torch.Tensor:
    """``torch.softmax(x, -1)`` for a short last axis (4-5 classes here), where torch's kernel
    ran ~6x slower than these elementwise ops; equal to it up to float rounding.

    The shifted logits are floored at -80, so no probability is a subnormal float (or zero):
    a sharp generator puts most classes 100+ below the top one, and torch's CPU ``exp`` ran
    40-60x slower on inputs whose result is subnormal, even with subnormals flushed.  A
    class below the floor gets probability ~1e-35 instead of < 1e-38 (and no gradient),
    which is below the float32 rounding of every probability that sums with it to 1.
    """
    shifted = x - x.amax(-1, keepdim=True).detach()  # the shift cancels: no gradient through it
    e = torch.exp(shifted.clamp_min(_LOGIT_FLOOR))
    return e / e.sum(-1, keepdim=True)


def _gumbel(shape, generator, like: torch.Tensor) -> torch.Tensor:
    u = torch.rand(shape, generator=generator, dtype=like.dtype, device=like.device)
    return -torch.log((-torch.log(u.clamp_min(1e-20))).clamp_min(1e-20))


def _straight_through(p: torch.Tensor) -> torch.Tensor:
    hard = F.one_hot(p.argmax(-1), p.shape[-1]).to(p.dtype)
    return hard + p - p.detach()


class _TransposedView(torch.autograd.Function):
    """``x.transpose(1, 2)``, a view, whose gradient comes back contiguous."""

    @staticmethod
    def forward(ctx, x: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        return x.transpose(1, 2)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        return _TransposedView.apply(grad).contiguous()


class _Bmm(torch.autograd.Function):
    """``torch.bmm(a, b)`` whose gradients, and theirs, come back contiguous (operands of one dtype)."""

    @staticmethod
    def forward(ctx, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        ctx.save_for_backward(a, b)
        return torch.bmm(a, b)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):  # type: ignore[override]
        a, b = ctx.saved_tensors
        return _Bmm.apply(grad, _TransposedView.apply(b)), _Bmm.apply(_TransposedView.apply(a), grad)


def autocast_dtype(device_type: str) -> Optional[torch.dtype]:
    """The dtype autocast casts products to on ``device_type`` here, or ``None`` outside autocast."""
    try:
        enabled = torch.is_autocast_enabled(device_type)
        return torch.get_autocast_dtype(device_type) if enabled else None
    except TypeError:  # torch < 2.4: no per-device queries
        if device_type == "cpu":
            return torch.get_autocast_cpu_dtype() if torch.is_autocast_cpu_enabled() else None
        return torch.get_autocast_gpu_dtype() if torch.is_autocast_enabled() else None


def graph_bmm(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """``torch.bmm(a, b)``, the same values and gradients (autocast included), for the critic's
    neighbour sums.

    Autograd gives ``b`` (say) two gradient terms in a gradient penalty's double backward, one
    computed transposed; adding a transposed ``(G, 27, 64)`` term to a contiguous one took 8x as
    long as a contiguous add (2-3 % of a bf16 stacked critic update).  Here every gradient is
    made contiguous where it is formed, so the sums are contiguous.
    """
    dtype = autocast_dtype(a.device.type)
    if dtype is not None:  # cast as autocast would, outside the function so that autograd sees it
        a, b = a.to(dtype), b.to(dtype)
    return _Bmm.apply(a, b)


class Discriminator(nn.Module):
    """Relational GCN critic: ``(edges (B, N, N, R), nodes (B, N, A)) -> scores (B,)``.

    Each graph-convolution layer computes ``h' = tanh(sum_y E_y [h, x] W_y + [h, x] W_0)``
    over the bond types ``y = 1..R-1`` (the "no bond" channel is ignored), with
    one weight per bond type and a self-connection ``W_0``.  The per-type products
    are fused: one matmul by the concatenated weights, then one batched
    contraction with the adjacency.  Node states are pooled by the gated sum
    ``tanh(sum_v sigmoid(i(h_v, x_v)) * tanh(j(h_v, x_v)))`` and scored by an MLP.
    No batch-coupled layers (batch norm), so per-sample gradient penalties are valid.
    """

    def __init__(
        self,
        n_atom_types: int = 5,
        n_bond_types: int = 4,
        conv_dims: Sequence[int] = (128, 64),
        aggregation_dim: int = 128,
        mlp_dims: Sequence[int] = (128, 64),
    ) -> None:
        super().__init__()
        self.n_atom_types, self.n_bond_types = int(n_atom_types), int(n_bond_types)
        n_rel = self.n_bond_types - 1
        self.n_rel = n_rel
        self.self_maps = nn.ModuleList()  # W_0 (with the bias)
        self.bond_maps = nn.ModuleList()  # [W_1 ... W_{R-1}] concatenated: one matmul for all bond types
        d_in = 0
        for d_out in conv_dims:
            self.self_maps.append(nn.Linear(d_in + n_atom_types, d_out))
            self.bond_maps.append(nn.Linear(d_in + n_atom_types, n_rel * d_out, bias=False))
            d_in = d_out
        self.gate = nn.Linear(d_in + n_atom_types, aggregation_dim)
        self.value = nn.Linear(d_in + n_atom_types, aggregation_dim)
        layers: list[nn.Module] = []
        d = aggregation_dim
        for width in mlp_dims:
            layers += [nn.Linear(d, width), nn.Tanh()]
            d = width
        layers.append(nn.Linear(d, 1))
        self.head = nn.Sequential(*layers)

    def forward(self, edges: torch.Tensor, nodes: torch.Tensor) -> torch.Tensor:
        if edges.dim() != 4 or edges.shape[-1] != self.n_bond_types:
            raise ValueError(f"edges must have shape (batch, N, N, {self.n_bond_types}), got {tuple(edges.shape)}")
        if nodes.dim() != 3 or nodes.shape[-1] != self.n_atom_types or nodes.shape[:2] != edges.shape[:2]:
            raise ValueError(f"nodes must have shape (batch, N, {self.n_atom_types}), got {tuple(nodes.shape)}")
        b, n = nodes.shape[:2]
        # bonds only, as (B, N, N * (R-1)) so that one bmm sums over neighbours j and bond types y
        adj = edges[..., 1:].reshape(b, n, n * self.n_rel)
        h = nodes
        for self_map, bond_map in zip(self.self_maps, self.bond_maps):
            msg = graph_bmm(adj, bond_map(h).view(b, n * self.n_rel, -1))  # sum_{j,y} E[b,i,j,y] (h_j W_y)
            h = torch.cat([tanh(self_map(h) + msg), nodes], dim=-1)
        pooled = tanh((sigmoid(self.gate(h)) * tanh(self.value(h))).sum(dim=1))
        return self.head(pooled).squeeze(-1)
