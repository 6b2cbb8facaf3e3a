"""`optim.embedding_update: rows`: AdamW on the embedding rows read so far is dense AdamW."""

from __future__ import annotations

import copy

import pytest
import torch

from fsf.train._rows import RowAdamW, clip_grad_norm_


class _Toy(torch.nn.Module):
    def __init__(self, rows: int = 400, width: int = 8):
        super().__init__()
        self.embed = torch.nn.Embedding(rows, width)
        self.norm = torch.nn.LayerNorm(width)
        self.head = torch.nn.Linear(width, 3)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        return self.head(self.norm(self.embed(ids)).mean(1))


def _groups(model: torch.nn.Module) -> list[dict]:
    decays = [model.embed.weight, model.head.weight]
    rest = [p for p in model.parameters() if all(p is not q for q in decays)]
    return [{"params": decays, "weight_decay": 0.1}, {"params": rest, "weight_decay": 0.0}]


def _train(model, optimizer, clip, batches, accum):
    """Steps with a changing lr per group (a schedule and a policy multiplier), clipping, and
    gradient accumulation; then an evaluation forward."""
    gen = torch.Generator().manual_seed(0)
    for step, ids in enumerate(batches, start=1):
        for g, mult in zip(optimizer.param_groups, (0.5 if step % 3 else 2.0, 1.0), strict=True):
            g["lr"] = 0.05 * mult / step**0.5
        for part in ids.chunk(accum):
            y = torch.randint(0, 3, (len(part),), generator=gen)
            loss = torch.nn.functional.cross_entropy(model(part), y)
            loss.backward()
        clip(model.parameters(), 0.5)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
    model.eval()
    with torch.no_grad():
        return model(batches[0])


@pytest.mark.parametrize("spread", [60, 300], ids=["rows", "turns-dense"])
def test_row_updates_are_dense_adamw(spread):
    """In float64 (so that summation order does not show), the row-wise update gives dense
    fused AdamW's parameters and outputs: rows read often, rows read once early, rows never
    read (decay only), with clipping and accumulation; past half the rows it goes dense."""
    torch.manual_seed(0)
    dense = _Toy().double()
    rows = copy.deepcopy(dense)
    gen = torch.Generator().manual_seed(1)
    batches = [torch.randint(0, spread if s > 2 else 400, (8, 5), generator=gen) for s in range(12)]
    ref = torch.optim.AdamW(_groups(dense), lr=0.05, fused=True)
    opt = RowAdamW(_groups(rows), rows.embed, lr=0.05)
    out_dense = _train(dense, ref, torch.nn.utils.clip_grad_norm_, batches, accum=2)
    out_rows = _train(rows, opt, clip_grad_norm_, batches, accum=2)
    assert opt.dense == (spread == 300)
    assert torch.allclose(out_rows, out_dense, rtol=0, atol=1e-12)
    for (name, a), b in zip(dense.state_dict().items(), rows.state_dict().values(), strict=True):
        assert torch.allclose(a, b, rtol=0, atol=1e-12), name
    if not opt.dense:  # the moments of the embedding exist only for the rows read
        assert len(opt.rows) < 200 and "exp_avg" not in ref.state.get(rows.embed.weight, {})


def test_unread_rows_owe_only_their_decay_until_read():
    torch.manual_seed(0)
    model = _Toy().double()
    before = model.embed.weight.detach().clone()
    opt = RowAdamW(_groups(model), model.embed, lr=0.1)
    ids = torch.tensor([[1, 2, 3]])
    for _ in range(3):
        model(ids).sum().backward()
        clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        opt.zero_grad()
    untouched = model.embed.weight.detach()[10]
    assert torch.equal(untouched, before[10])  # not applied yet: owed
    assert opt.pending == pytest.approx((1 - 0.1 * 0.1) ** 3)
    model.state_dict()  # any read of the weights settles them
    assert torch.allclose(model.embed.weight.detach()[10], before[10] * (1 - 0.01) ** 3)
    assert opt.pending == 1.0


def test_clip_counts_a_sparse_gradient_as_its_dense_one():
    torch.manual_seed(0)
    sparse, dense = _Toy(), _Toy()
    dense.load_state_dict(sparse.state_dict())
    sparse.embed.sparse = True
    ids = torch.tensor([[1, 1, 2, 5], [5, 7, 7, 7]])
    for m in (sparse, dense):
        m(ids).square().sum().backward()
    got = clip_grad_norm_(sparse.parameters(), 0.01)
    want = torch.nn.utils.clip_grad_norm_(dense.parameters(), 0.01)
    assert torch.allclose(got, want)
    assert torch.allclose(sparse.embed.weight.grad.to_dense(), dense.embed.weight.grad)
    assert torch.allclose(sparse.head.weight.grad, dense.head.weight.grad)
