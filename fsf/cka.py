"""Linear CKA, and the pooled hidden states it compares.

Linear centred kernel alignment (Kornblith et al., ICML 2019) between two representations
X (n x p) and Y (n x q) of the same n inputs, with the columns centred:

    CKA(X, Y) = ||Y^T X||_F^2 / (||X^T X||_F * ||Y^T Y||_F)

It is 1 for identical representations, invariant to orthogonal transforms and isotropic
scaling of either side, and in [0, 1]. It equals HSIC(K, L) / sqrt(HSIC(K, K) HSIC(L, L)) with
linear kernels K = X X^T, L = Y Y^T; this module computes whichever of the two forms is cheaper
(feature space when n > p + q, Gram matrices otherwise), in float64.

This module is a leaf: it needs only torch and numpy, so the training core (the worker's CKA
monitor) and the synthetic benchmark import it without pulling in results or sweeps.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, Literal

import numpy as np
import torch

__all__ = ["linear_cka", "pooled_hidden_states"]


def _as_tensor(x: Any) -> torch.Tensor:
    if isinstance(x, torch.Tensor):
        return x.detach().to("cpu", torch.float64)
    return torch.as_tensor(np.asarray(x), dtype=torch.float64)


def linear_cka(x: torch.Tensor | np.ndarray, y: torch.Tensor | np.ndarray) -> float:
    """Linear CKA between `x` (n x p) and `y` (n x q), rows = the same inputs.

    Returns NaN when either side has no variance (every row the same): CKA is undefined there.
    """
    x, y = _as_tensor(x), _as_tensor(y)
    if x.ndim != 2 or y.ndim != 2 or x.shape[0] != y.shape[0]:
        raise ValueError(
            f"linear_cka needs two 2-D arrays with the same number of rows, got shapes "
            f"{tuple(x.shape)} and {tuple(y.shape)}"
        )
    x = x - x.mean(0)
    y = y - y.mean(0)
    n, p, q = x.shape[0], x.shape[1], y.shape[1]
    if n > p + q:  # feature space: p x q products
        num = (y.T @ x).square().sum()
        den = (x.T @ x).norm() * (y.T @ y).norm()
    else:  # Gram matrices: n x n products (the columns are centred, so K and L are too)
        k, l_ = x @ x.T, y @ y.T
        num = (k * l_).sum()
        den = k.norm() * l_.norm()
    if den <= 0 or not torch.isfinite(den):
        return float("nan")
    return float(num / den)


@torch.no_grad()
def pooled_hidden_states(
    model: torch.nn.Module,
    batches: Iterable[Mapping[str, torch.Tensor]],
    pooling: Literal["mean", "first"] = "mean",
    device: torch.device | str | None = None,
) -> list[torch.Tensor]:
    """Per layer (index 0 = the embeddings' output), the pooled hidden states of every example.

    `batches` are what the model's forward takes (a task's `collate` output; labels are
    harmless). `mean` averages over the tokens where `attention_mask` is 1 (all tokens when
    the batch has no mask); `first` takes the first token (`<s>`/`[CLS]`). Returns float32
    CPU tensors of shape (examples, hidden). The model's train/eval mode is left as it was;
    the forward passes run in eval mode (no dropout).
    """
    was_training = model.training
    model.eval()
    layers: list[list[torch.Tensor]] = []
    try:
        for batch in batches:
            inputs = {k: (v.to(device) if device is not None else v) for k, v in batch.items()}
            out = model(**inputs, output_hidden_states=True)
            states = out.hidden_states
            if states is None:
                raise ValueError(f"{type(model).__name__} returned no hidden_states")
            mask = inputs.get("attention_mask")
            pooled = []
            for h in states:
                h = h.float()
                if pooling == "first":
                    pooled.append(h[:, 0])
                elif mask is None:
                    pooled.append(h.mean(1))
                else:
                    m = mask.unsqueeze(-1).to(h.dtype)
                    pooled.append((h * m).sum(1) / m.sum(1).clamp_min(1.0))
            if not layers:
                layers = [[] for _ in pooled]
            for acc, p in zip(layers, pooled, strict=True):
                acc.append(p.to("cpu", torch.float32))
    finally:
        model.train(was_training)
    return [torch.cat(acc) for acc in layers]
