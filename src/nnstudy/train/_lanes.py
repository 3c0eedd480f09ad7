"""The stacked MLP engine's arithmetic (``stacked.py`` wraps it): R same-shape MLPs ("lanes") as stacked tensors, with
a hand-written forward and backward pass, dropout from per-lane generators, batched evaluation, and
torch's fused optimizer kernels (Adam, AdamW) or SGD over the flat buffer.

Shapes: layer l's weights are ``(R, out, in)`` and biases ``(R, out)``, views of one flat buffer per
kind (``Flat``: weights, gradients, each optimizer state); activations are feature-major,
``(R, features, B)``. A step is, per layer, one ``baddbmm`` forward and two ``bmm`` backward (none for
the images' gradient), all written into preallocated ``Buffers``.

Numerics: the forward and backward passes use the kernels autograd uses (``threshold_backward``,
``tanh_backward``, ``sigmoid_backward``, ``gelu_backward``; log-softmax and its gradient
``softmax − onehot``); the update is SGD's arithmetic written out over the flat buffer with per-lane
hyperparameters, or ``torch._fused_adam_``/``_fused_adamw_``, the kernels of ``torch.optim``'s
``fused=True``. Every kernel computes a lane from that lane's values alone, so with one thread a
lane's numbers are bitwise those of the same run trained alone; with more threads MKL may split a
batched matmul differently for different R (last-bit differences).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch

from nnstudy.spec import RunSpec
from nnstudy.train._env import EVAL_BATCH, EVAL_BYTES

__all__ = ["Flat", "Buffers", "Lanes", "mlp_shape"]


def mlp_shape(spec: RunSpec) -> tuple[tuple[int, ...], str]:
    """Hidden widths and activation: what makes two models stackable (dropout rates are per lane)."""
    m = spec.model
    hidden = tuple(m.hidden) if m.kind == "mlp" else ()
    return hidden, (m.activation if hidden else "identity")


class Flat:
    """One flat buffer holding a tensor per layer, each with the lanes as its leading dimension:
    ``views[2l]`` is layer l's weight ``(R, out, in)`` and ``views[2l+1]`` its bias ``(R, out)``.

    Layer-major (all lanes of a layer together), so that every ``bmm`` writes one contiguous block,
    and the whole thing is one tensor for the optimizer's fused kernel.
    """

    def __init__(self, R: int, dims: Sequence[int], dtype: torch.dtype, device: torch.device,
                 flat: torch.Tensor | None = None):
        self.R, self.dims = R, tuple(dims)
        shapes = [s for a, b in zip(dims[:-1], dims[1:], strict=True) for s in ((b, a), (b,))]
        sizes = [R * math.prod(s) for s in shapes]
        self.flat = torch.zeros(sum(sizes), dtype=dtype, device=device) if flat is None else flat
        self.views = [v.view(R, *s) for v, s in zip(self.flat.split(sizes), shapes, strict=True)]

    def lane(self, r: int) -> list[torch.Tensor]:
        """Lane r's tensors (contiguous views)."""
        return [v[r] for v in self.views]

    def select(self, keep: torch.Tensor) -> Flat:
        """A new stack with only the lanes ``keep`` (int64 indices), in that order."""
        flat = torch.cat([v.index_select(0, keep).reshape(-1) for v in self.views])
        return Flat(len(keep), self.dims, flat.dtype, flat.device, flat)


_ACT_BACKWARD: dict[str, Callable[[torch.Tensor, torch.Tensor], torch.Tensor]] = {
    # the kernels autograd itself uses, applied to the saved output (tanh, sigmoid) or input (gelu);
    # relu's (threshold_backward) runs in place in forward_backward
    "tanh": torch.ops.aten.tanh_backward,
    "sigmoid": torch.ops.aten.sigmoid_backward,
    "gelu": torch.ops.aten.gelu_backward,
}


class Buffers:
    """Preallocated step buffers for R lanes and batch size B (a separate set for the last, shorter
    batch of an epoch). Activations are feature-major: ``(R, features, B)``."""

    def __init__(self, R: int, B: int, dims: Sequence[int], dropout_layers: Sequence[int], cdt: torch.dtype,
                 device: torch.device, keep_preact: bool):
        self.R, self.B = R, B
        self.x = torch.empty(R, B, dims[0], dtype=cdt, device=device)  # (R, B, F): gathered rows
        self.y = torch.empty(R, B, dtype=torch.long, device=device)  # (R, B)
        # per layer: pre-activation z (R, out, B); for hidden layers the activation h (z itself where
        # the backward pass needs only the output) and, with dropout, a = h · mask, the next layer's input
        self.z = [torch.empty(R, d, B, dtype=cdt, device=device) for d in dims[1:]]
        hidden = dims[1:-1]
        self.h = [torch.empty(R, d, B, dtype=cdt, device=device) if keep_preact else z
                  for d, z in zip(hidden, self.z, strict=False)]
        self.u = {i: torch.zeros(R, hidden[i], B, device=device) for i in dropout_layers}  # uniforms
        self.mask = {i: torch.empty(R, hidden[i], B, dtype=cdt, device=device) for i in dropout_layers}
        self.a = [torch.empty(R, d, B, dtype=cdt, device=device) if i in dropout_layers else self.h[i]
                  for i, d in enumerate(hidden)]
        self.da = [torch.empty(R, d, B, dtype=cdt, device=device) for d in hidden]  # grads wrt a
        self.minus_one = torch.full((R, 1, B), -1.0, device=device)
        # views made once: every Python-level op costs a few microseconds, and a step has dozens
        self.x_rows, self.y_flat = self.x.view(R * B, dims[0]), self.y.view(R * B)
        self.xT, self.y1 = self.x.transpose(1, 2), self.y.unsqueeze(1)  # (R, F, B), (R, 1, B)
        self.draws: dict[int, list[tuple[torch.Generator, torch.Tensor]]] = {}  # set by Lanes.buffers


class Lanes:
    """The R MLPs being trained: weights, gradients and optimizer state as ``Flat`` stacks, the
    per-lane dropout rates and generators, and the forward/backward/update of one step."""

    def __init__(self, specs: list[RunSpec], models: list[torch.nn.Module], dropout_seeds: list[int],
                 data: Any, device: torch.device):
        spec0 = specs[0]
        hidden, self.activation = mlp_shape(spec0)
        self.dims = (math.prod(data.input_shape), *hidden, data.num_classes)
        self.L = len(self.dims) - 1
        self.device = device
        self.cdt = torch.bfloat16 if spec0.precision == "bf16" else torch.float32
        self.opt_name = spec0.optimizer.name
        R = len(specs)
        self.params = Flat(R, self.dims, torch.float32, device)
        with torch.no_grad():
            for r, model in enumerate(models):
                linears = [m for m in model.modules() if isinstance(m, torch.nn.Linear)]
                for v, p in zip(self.params.lane(r), (t for m in linears for t in (m.weight, m.bias)), strict=True):
                    v.copy_(p.detach())
        self.grads = Flat(R, self.dims, torch.float32, device)
        # optimizer state: SGD's momentum buffer; Adam's first and second moments
        n_state = {"sgd": 1 if any(s.optimizer.momentum > 0 for s in specs) else 0}.get(self.opt_name, 2)
        self.state = [Flat(R, self.dims, torch.float32, device) for _ in range(n_state)]
        self.step_t = torch.zeros((), device=device)  # Adam's step, read by the fused kernel
        # dropout rate of every hidden layer per lane; tensors only for layers where some lane drops
        rates = [list(s.model.dropouts()) if hidden else [] for s in specs]
        self.dropout_layers = [i for i in range(len(hidden)) if any(p[i] > 0 for p in rates)]
        self.rates = rates
        self.gens = []
        for seed in dropout_seeds:
            g = torch.Generator(device=device)
            g.manual_seed(seed)
            self.gens.append(g)
        self._hyper_tensors()

    @property
    def R(self) -> int:
        return self.params.R

    def _hyper_tensors(self) -> None:
        R = self.R
        self.p_drop = {i: torch.tensor([p[i] for p in self.rates], device=self.device).view(R, 1, 1)
                       for i in self.dropout_layers}
        self.scale = {i: (1.0 / (1.0 - self.p_drop[i])).to(self.cdt) for i in self.dropout_layers}
        self._bufs: dict[int, Buffers] = {}
        self._groups_key: tuple | None = None  # the hyperparameters update last prepared for
        self._groups: list[tuple[dict[str, Any], list, list, list]] = []  # Adam's lane groups
        self._sgd: dict[str, torch.Tensor | None] = {}  # SGD's per-element hyperparameters
        self._lane_of: torch.Tensor | None = None  # lane of every element of the flat buffers
        # compute-dtype copies of the weights and gradients (the fp32 ones themselves under fp32)
        if self.cdt == torch.float32:
            self.wc, self.gc = self.params, self.grads
        else:
            self.wc = Flat(R, self.dims, self.cdt, self.device)
            self.gc = Flat(R, self.dims, self.cdt, self.device)
        W, b = self.wc.views[0::2], self.wc.views[1::2]
        self.fwd = [(bias.unsqueeze(2), w) for w, bias in zip(W, b, strict=True)]  # (R, out, 1), (R, out, in)
        self.bwd = [(gw, gb, w.transpose(1, 2))  # (R, out, in), (R, out), (R, in, out)
                    for gw, gb, w in zip(self.gc.views[0::2], self.gc.views[1::2], W, strict=True)]

    def select(self, keep: list[int]) -> None:
        """Keep only the lanes ``keep`` (indices into the current lanes), in that order."""
        idx = torch.tensor(keep, dtype=torch.long, device=self.device)
        self.params = self.params.select(idx)
        self.grads = Flat(len(keep), self.dims, torch.float32, self.device)
        self.state = [s.select(idx) for s in self.state]
        self.rates = [self.rates[i] for i in keep]
        self.gens = [self.gens[i] for i in keep]
        self._hyper_tensors()

    def buffers(self, B: int) -> Buffers:
        if B not in self._bufs:
            bufs = Buffers(self.R, B, self.dims, self.dropout_layers, self.cdt, self.device,
                            keep_preact=self.activation == "gelu")
            # (generator, its lane's uniforms) of every lane that drops units in layer i
            bufs.draws = {i: [(g, bufs.u[i][r]) for r, g in enumerate(self.gens) if self.rates[r][i] > 0]
                          for i in self.dropout_layers}
            self._bufs[B] = bufs
        return self._bufs[B]

    # ----------------------------------------------------------------------------------- one step

    def forward_backward(self, x: torch.Tensor, y: torch.Tensor, idx: torch.Tensor, B: int,
                         nll: torch.Tensor, hits: torch.Tensor) -> None:
        """Gradients of the mean cross-entropy of each lane's batch into ``self.grads``.

        Activations are feature-major, ``(R, features, B)``: the log-softmax then runs over dim 1 of
        ``(R, C, B)``, vectorized along the batch (over the last dim of size C = 10 it is ~20x
        slower), and MKL's batched gemm is as fast or faster in this orientation (measured).

        Args:
            x, y: the training split, (N, F) in the compute dtype and (N,) int64.
            idx: (R·B,) int64, lane r's batch is rows ``idx[r·B:(r+1)·B]``.
            nll: (R,) float32, gets each lane's summed negative log-likelihood over its batch.
            hits: (R, B) bool, gets whether each prediction was right.
        """
        bufs, L, act = self.buffers(B), self.L, self.activation
        if self.wc is not self.params:
            self.wc.flat.copy_(self.params.flat)
        torch.index_select(x, 0, idx, out=bufs.x_rows)  # (R, B, F)
        torch.index_select(y, 0, idx, out=bufs.y_flat)  # (R, B)
        inputs = [bufs.xT]  # (R, F, B)
        for i, (bias, w) in enumerate(self.fwd):
            z = torch.baddbmm(bias, w, inputs[i], out=bufs.z[i])  # (R, out, B)
            if i == L - 1:
                break
            if act == "relu":
                z.relu_()
            elif act == "gelu":
                torch.ops.aten.gelu.out(z, out=bufs.h[i])  # z is kept: gelu's backward reads it
            elif act != "identity":
                getattr(z, f"{act}_")()
            if i in bufs.mask:
                self._draw_mask(i, bufs)
                torch.mul(bufs.h[i], bufs.mask[i], out=bufs.a[i])
            inputs.append(bufs.a[i])
        logits = bufs.z[-1]  # (R, C, B)
        logp = torch.log_softmax(logits, 1, dtype=torch.float32)  # (R, C, B), fp32 even under bf16
        torch.sum(logp.gather(1, bufs.y1), (1, 2), out=nll)  # (R,): minus the summed loss
        torch.eq(torch.max(logits, 1).indices, bufs.y, out=hits)  # max's index is the first, as argmax's
        # d(mean cross-entropy)/d logits = (softmax − onehot) / B
        g = logp.exp_().scatter_add_(1, bufs.y1, bufs.minus_one).mul_(1.0 / B).to(self.cdt)  # (R, C, B)
        for i in range(L - 1, -1, -1):
            gw, gb, wT = self.bwd[i]
            torch.bmm(g, inputs[i].transpose(1, 2), out=gw)  # (R, out, in)
            torch.sum(g, 2, out=gb)  # (R, out)
            if i == 0:
                break  # no gradient with respect to the images
            da = torch.bmm(wT, g, out=bufs.da[i - 1])  # (R, in, B): wrt the dropped activation
            if i - 1 in bufs.mask:
                da.mul_(bufs.mask[i - 1])
            if act == "identity":
                g = da
            elif act == "relu":
                g = torch.ops.aten.threshold_backward.grad_input(da, bufs.h[i - 1], 0, grad_input=da)
            elif act == "gelu":
                g = _ACT_BACKWARD[act](da, bufs.z[i - 1])
            else:
                g = _ACT_BACKWARD[act](da, bufs.h[i - 1])
        if self.gc is not self.grads:
            self.grads.flat.copy_(self.gc.flat)

    def _draw_mask(self, i: int, bufs: Buffers) -> None:
        """Dropout mask of hidden layer i for every lane: each lane draws from its own generator
        (lanes with rate 0 draw nothing and keep everything), kept where u >= p, scaled by 1 / (1 - p)."""
        for gen, u in bufs.draws[i]:
            torch.rand(u.shape, generator=gen, device=self.device, out=u)  # (width, B)
        mask = bufs.mask[i]  # (R, width, B)
        torch.ge(bufs.u[i], self.p_drop[i], out=mask)  # 1.0 / 0.0 in the compute dtype: no bool tensor
        mask.mul_(self.scale[i])

    # -------------------------------------------------------------------------------- evaluation

    @torch.no_grad()
    def predict(self, x: torch.Tensor, y: torch.Tensor, lanes: list[int] | None = None
                ) -> tuple[np.ndarray, np.ndarray, torch.Tensor]:
        """Eval-mode mean loss (R,), accuracy (R,) and predictions (R, N) of the lanes (all when
        None) on x (N, F) in the compute dtype, y (N,), in chunks of up to ``EVAL_BATCH`` rows (fewer
        where the lanes' widest activation would pass ``EVAL_BYTES``)."""
        sel = list(range(self.R)) if lanes is None else lanes
        idx = torch.tensor(sel, dtype=torch.long, device=self.device)
        views = [v.index_select(0, idx) for v in self.params.views]
        W = [v.to(self.cdt) for v in views[0::2]]
        b = [v.to(self.cdt) for v in views[1::2]]
        R, n = len(sel), len(y)
        if n == 0:
            return np.full(R, math.nan), np.full(R, math.nan), torch.empty(R, 0, dtype=torch.long)
        loss = torch.zeros(R, dtype=torch.float64, device=self.device)
        preds = []
        chunk = max(64, min(EVAL_BATCH, EVAL_BYTES // (4 * R * max(self.dims[1:]))))
        for s in range(0, n, chunk):
            a = x[s : s + chunk]  # (n, F)
            yb = y[s : s + chunk]
            # first layer lane by lane over the shared images: the same product, shapes and kernel as
            # the run alone, so packing does not change its evaluation (concatenating the lanes into one
            # wider matmul would, in the last bits)
            aT = a.t()  # (F, n)
            z = torch.stack([torch.addmm(b[0][r].unsqueeze(1), W[0][r], aT) for r in range(R)])  # (R, out, n)
            for i in range(1, self.L):
                z = torch.baddbmm(b[i].unsqueeze(2), W[i], self._act(z))  # (R, out, n)
            logp = torch.log_softmax(z, 1, dtype=torch.float32)  # (R, C, n)
            loss -= logp.gather(1, yb.view(1, 1, -1).expand(R, 1, -1)).sum((1, 2))
            preds.append(torch.max(z, 1).indices)
        pred = torch.cat(preds, 1)  # (R, N)
        acc = (pred == y).double().mean(1)
        return (loss / n).cpu().numpy(), acc.cpu().numpy(), pred.cpu()

    def _act(self, z: torch.Tensor) -> torch.Tensor:
        if self.activation == "identity":
            return z
        return getattr(torch.nn.functional, self.activation)(z) if self.activation == "gelu" else \
            getattr(torch, self.activation)(z)

    # ------------------------------------------------------------------------------------ update

    def update(self, hyper: list[dict[str, Any]]) -> None:
        """One optimizer step with each lane's hyperparameters (``hyper[r]``: lr, momentum,
        nesterov, weight_decay, beta1, beta2, eps).

        SGD: a few elementwise ops over the whole flat buffer, each lane's hyperparameters spread
        over its elements (``_per_element``), so that a pack of twelve learning rates costs what one
        run costs per element (twelve fused calls, one per lane, took 245 µs of a 1.8 ms step, measured
        on seed 000's 784-50-50-50-10). Adam and AdamW: torch's fused kernel, once per group of lanes
        with equal values (one call for the pack when all agree)."""
        self.step_t.add_(1)
        key = tuple(tuple(h.values()) for h in hyper)
        if key != self._groups_key:  # hyperparameters change only with a schedule or a smaller pack
            self._groups_key = key
            if self.opt_name == "sgd":
                self._sgd = self._per_element(hyper)
            else:
                self._groups = self._group_lists(hyper)
        if self.opt_name == "sgd":
            self._sgd_step()
            return
        for h, ps, gs, st in self._groups:
            self._fused(ps, gs, st, h)

    def _per_element(self, hyper: list[dict[str, Any]]) -> dict[str, torch.Tensor | None]:
        """SGD's hyperparameters as tensors that broadcast over the flat parameter buffer: one value
        (a 0-dim tensor) where every lane has the same, else lane r's value on lane r's elements
        (rebuilt only when the values change: every step under a schedule, so the common case, one
        run or one learning rate, gathers nothing); None for a term no lane uses. Either form makes
        the same elementwise products, so a lane's numbers do not depend on its pack (tested)."""

        def spread(values: list[float]) -> torch.Tensor:
            if len(set(values)) == 1:
                return torch.tensor(values[0], dtype=torch.float32, device=self.device)
            if self._lane_of is None:
                self._lane_of = torch.cat([torch.arange(self.R, device=self.device).repeat_interleave(v[0].numel())
                                           for v in self.params.views])
            return torch.tensor(values, dtype=torch.float32, device=self.device)[self._lane_of]

        out: dict[str, torch.Tensor | None] = {"neg_lr": spread([-h["lr"] for h in hyper])}
        out["wd"] = spread([h["weight_decay"] for h in hyper]) if any(h["weight_decay"] for h in hyper) else None
        out["momentum"] = spread([h["momentum"] for h in hyper]) if any(h["momentum"] for h in hyper) else None
        nesterov = [float(bool(h["nesterov"] and h["momentum"])) for h in hyper]
        out["nesterov"] = spread(nesterov).bool() if any(nesterov) else None
        return out

    def _sgd_step(self) -> None:
        """torch.optim.SGD's update (dampening 0), elementwise: d = g + wd·p; with momentum
        buf = momentum·buf + d (buf starts at zero, so the first step's buf is d, as torch's) and
        d = buf, or d + momentum·buf with Nesterov; then p ← p − lr·d. The same ops for one lane or
        many: a lane's numbers do not depend on the pack."""
        h = self._sgd
        p, d = self.params.flat, self.grads.flat
        if h["wd"] is not None:
            d.addcmul_(p, h["wd"])
        if h["momentum"] is not None:
            buf = self.state[0].flat
            buf.mul_(h["momentum"]).add_(d)
            # Nesterov lanes step along d + momentum·buf, the others along buf
            d = buf if h["nesterov"] is None else torch.where(h["nesterov"], d.addcmul(buf, h["momentum"]), buf)
        p.addcmul_(d, h["neg_lr"])

    def _group_lists(self, hyper: list[dict[str, Any]]) -> list[tuple[dict[str, Any], list, list, list]]:
        """Lanes grouped by equal hyperparameters, each with its parameter, gradient and state tensors.

        Always lane by lane (each lane's weight and bias tensors), never the flat buffer, even when
        one group holds every lane: torch's fused Adam runs a vectorized loop with a scalar tail per
        tensor, and the tail rounds differently. Over the flat buffer a lane's elements would meet the
        tail at other positions in a pack than alone (784-300-10: 238,510 parameters, not a multiple
        of the vector width), and the packed run would drift from the run alone in the last bits."""
        groups: dict[tuple, list[int]] = {}
        for r, h in enumerate(hyper):
            groups.setdefault(tuple(h.items()), []).append(r)
        return [(dict(key), [t for r in lanes for t in self.params.lane(r)],
                 [t for r in lanes for t in self.grads.lane(r)],
                 [[t for r in lanes for t in s.lane(r)] for s in self.state])
                for key, lanes in groups.items()]

    def _fused(self, ps: list[torch.Tensor], gs: list[torch.Tensor], st: list[list[torch.Tensor]],
               h: dict[str, Any]) -> None:
        fused = torch._fused_adam_ if self.opt_name == "adam" else torch._fused_adamw_
        steps = [self.step_t] * len(ps)  # one count for all: every lane has taken every step
        fused(ps, gs, st[0], st[1], [], steps, lr=h["lr"], beta1=h["beta1"], beta2=h["beta2"],
              weight_decay=h["weight_decay"], eps=h["eps"], amsgrad=False, maximize=False)

    def lane_state(self, r: int) -> list[torch.Tensor]:
        """Copies of lane r's weights and biases, in layer order."""
        return [t.clone() for t in self.params.lane(r)]

    def load_lane(self, r: int, tensors: list[torch.Tensor]) -> None:
        for v, t in zip(self.params.lane(r), tensors, strict=True):
            v.copy_(t)
