"""AdamW on the rows of a word embedding that training has touched (`optim.embedding_update:
rows`): the same update as dense AdamW, without its dense gradient.

A multilingual encoder's word embedding is most of its parameters (XLM-R base: 192 M of
278 M, 250k rows), and a batch reads a few hundred rows. Dense training still writes a
250k x 768 gradient every step, clips it and runs AdamW over every row with both moments:
~25% of an XLM-R-base step on CPU (docs/benchmarks.md, benchmark 8). Here the embedding's
gradient is taken sparse (`nn.Embedding(sparse=True)`: the rows the batch read), and:

- a row that no batch has read has zero Adam moments, so dense AdamW's whole update of it is
  the decoupled weight decay, `p *= 1 - lr * weight_decay`, the same factor for all such rows:
  it is accumulated as one number and applied to a row when a batch first reads it (a
  forward pre-hook), and to all of them before any other read of the weights (an evaluation
  forward, `state_dict`: `materialize`);
- every row read at least once is updated every step by the same fused AdamW kernel as the
  other parameters (its moments kept in row-compact tensors), exactly as dense AdamW updates
  it; when more than half the rows have been read, the embedding goes back to dense AdamW
  over all of them.

So the arithmetic is dense AdamW's, up to the order of floating-point sums (the sparse
gradient's duplicate rows are summed by `coalesce`, the decay factors multiplied together).
Clipping includes the sparse gradient (`clip_grad_norm_`). For one rank without ZeRO (the
gradient is never all-reduced); `fsf.train.worker` decides where it applies.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import torch
from torch.optim.adamw import adamw

__all__ = ["DENSE_AT", "RowAdamW", "clip_grad_norm_"]

#: Past this fraction of the rows read, the embedding goes back to dense AdamW.
DENSE_AT = 0.5


class RowAdamW(torch.optim.AdamW):
    """Fused AdamW whose `embedding`'s weight is updated row-wise (see the module doc).

    The other parameters, and the embedding's group settings (lr, betas, eps, weight_decay,
    read at every step: schedules and policy multipliers apply as to any group), are AdamW's.
    """

    def __init__(self, groups: list[dict[str, Any]], embedding: torch.nn.Embedding, **kwargs: Any):
        super().__init__(groups, fused=True, **kwargs)
        self.weight = w = embedding.weight
        self.group = next(g for g in self.param_groups if any(p is w for p in g["params"]))
        embedding.sparse = True
        rows, width = w.shape
        self.read = torch.zeros(rows, dtype=torch.bool, device=w.device)
        self.rows = torch.zeros(0, dtype=torch.long, device=w.device)  # read rows, in order
        self.where = torch.full((rows,), -1, dtype=torch.long, device=w.device)
        self.exp_avg = w.new_zeros(0, width)
        self.exp_avg_sq = w.new_zeros(0, width)
        self.pending = 1.0  # decay owed by every row not read yet
        self.dense = False  # all rows tracked: plain AdamW over the whole matrix
        self.step_count = torch.zeros((), device=w.device)  # (AdamW's state "step")
        embedding.register_forward_pre_hook(self._before_forward)
        embedding.register_state_dict_pre_hook(lambda *_args, **_kw: self.materialize())

    # -- reads of the weights ---------------------------------------------------------------

    def _before_forward(self, module: torch.nn.Module, args: tuple[Any, ...]) -> None:
        if not module.training:  # evaluation reads any row: settle them all
            self.materialize()
            return
        if self.dense:
            return
        ids = args[0].reshape(-1)
        new = torch.unique(ids[~self.read[ids]])
        if len(new):
            self._track(new)

    def _track(self, new: torch.Tensor) -> None:
        with torch.no_grad():
            if self.pending != 1.0:
                self.weight[new] *= self.pending
        self.read[new] = True
        self.rows = torch.cat([self.rows, new])
        self.where[new] = torch.arange(len(self.rows) - len(new), len(self.rows))
        zeros = self.exp_avg.new_zeros(len(new), self.exp_avg.shape[1])
        self.exp_avg = torch.cat([self.exp_avg, zeros])
        self.exp_avg_sq = torch.cat([self.exp_avg_sq, zeros])
        if len(self.rows) > DENSE_AT * len(self.read):
            self._to_dense()

    def _to_dense(self) -> None:
        """Track every row: moments as full matrices, the owed decay applied."""
        self.materialize()
        full = self.weight.new_zeros(self.weight.shape)
        self.exp_avg = full.index_copy(0, self.rows, self.exp_avg)
        self.exp_avg_sq = full.index_copy(0, self.rows, self.exp_avg_sq)
        self.rows = torch.arange(len(self.read), device=self.read.device)
        self.where = self.rows.clone()
        self.read[:] = True
        self.dense = True

    def materialize(self) -> None:
        """Apply the decay owed by rows not read yet, so that the weights are dense AdamW's."""
        if self.pending != 1.0:
            with torch.no_grad():
                self.weight[~self.read] *= self.pending
            self.pending = 1.0

    # -- the update -------------------------------------------------------------------------

    @torch.no_grad()
    def step(self, closure: Any = None) -> Any:
        w = self.weight
        grad, w.grad = w.grad, None  # (fused AdamW takes no sparse gradient: skip it there)
        loss = super().step(closure)
        g = self.group
        lr, decay = float(g["lr"]), float(g["weight_decay"])
        if grad is not None:
            grad = grad.coalesce()
            read = grad.indices()[0]
            unseen = read[~self.read[read]]  # (read outside a training forward)
            if len(unseen):
                self._track(unseen)
        if not len(self.rows):
            self.step_count += 1  # (as AdamW counts steps: every row's bias correction)
        else:
            dense_grad = w.new_zeros(len(self.rows), w.shape[1])
            if grad is not None:
                dense_grad.index_add_(0, self.where[read], grad.values())
            param = w.data if self.dense else w.index_select(0, self.rows)
            beta1, beta2 = g["betas"]
            adamw(  # torch's functional AdamW, its fused kernel
                [param], [dense_grad], [self.exp_avg], [self.exp_avg_sq], [], [self.step_count],
                fused=True, amsgrad=False, beta1=beta1, beta2=beta2, lr=lr,
                weight_decay=decay, eps=g["eps"], maximize=False,
            )  # fmt: skip
            if not self.dense:
                w.index_copy_(0, self.rows, param)
        self.pending *= 1.0 - lr * decay
        return loss

    def zero_grad(self, set_to_none: bool = True) -> None:
        super().zero_grad(set_to_none=True)  # (a sparse gradient is never zeroed in place)
        self.weight.grad = None

    def state_dict(self) -> dict[str, Any]:
        self.materialize()
        return super().state_dict()


def clip_grad_norm_(parameters: Iterable[torch.nn.Parameter], max_norm: float) -> torch.Tensor:
    """`torch.nn.utils.clip_grad_norm_` (2-norm, the same arithmetic) that also takes sparse
    gradients: each is coalesced in place (duplicate rows summed) and counts as the dense
    gradient it stands for."""
    params = [p for p in parameters if p.grad is not None]
    for p in params:
        if p.grad.is_sparse and not p.grad.is_coalesced():
            p.grad = p.grad.coalesce()
    grads = [p.grad._values() if p.grad.is_sparse else p.grad for p in params]
    if not grads:
        return torch.zeros(())
    total = torch.linalg.vector_norm(torch.stack(torch._foreach_norm(grads)))
    torch._foreach_mul_(grads, torch.clamp(max_norm / (total + 1e-6), max=1.0))
    return total
