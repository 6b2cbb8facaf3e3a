"""Linear CKA against an independent HSIC computation, its invariances, and pooled states."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from fsf.cka import linear_cka, pooled_hidden_states


def _hsic_cka(x: np.ndarray, y: np.ndarray) -> float:
    """CKA = HSIC(K, L) / sqrt(HSIC(K, K) HSIC(L, L)), HSIC(K, L) = tr(K H L H) / (n - 1)^2,
    linear kernels, written out with numpy (Kornblith et al. 2019, eq. 3-4)."""
    n = x.shape[0]
    h = np.eye(n) - np.ones((n, n)) / n
    k, l_ = x @ x.T, y @ y.T

    def hsic(a: np.ndarray, b: np.ndarray) -> float:
        return float(np.trace(a @ h @ b @ h)) / (n - 1) ** 2

    return hsic(k, l_) / np.sqrt(hsic(k, k) * hsic(l_, l_))


@pytest.mark.parametrize(("n", "p", "q"), [(200, 8, 5), (12, 30, 20), (40, 16, 16)])
def test_matches_the_hsic_formula_on_random_matrices(n, p, q):
    rng = np.random.default_rng(n + p + q)
    x = rng.normal(size=(n, p))
    y = x[:, :1] @ rng.normal(size=(1, q)) + rng.normal(size=(n, q))  # partly related
    assert linear_cka(x, y) == pytest.approx(_hsic_cka(x, y), rel=1e-9)
    z = rng.normal(size=(n, q))  # unrelated
    assert linear_cka(x, z) == pytest.approx(_hsic_cka(x, z), rel=1e-9)
    assert 0 <= linear_cka(x, z) <= 1 and 0 <= linear_cka(x, y) <= 1
    if n > 4 * (p + q):  # with few rows, CKA of unrelated matrices is biased high
        assert linear_cka(x, z) < 0.2 < linear_cka(x, y)


def test_identical_representations_give_one():
    x = torch.randn(50, 8, generator=torch.Generator().manual_seed(0))
    assert linear_cka(x, x) == pytest.approx(1.0, abs=1e-12)
    assert linear_cka(x.numpy(), x) == pytest.approx(1.0, abs=1e-12)


def test_invariant_to_orthogonal_transforms_and_isotropic_scaling():
    rng = np.random.default_rng(1)
    x, y = rng.normal(size=(60, 10)), rng.normal(size=(60, 7))
    y = y + 0.5 * x[:, :7]
    q, _ = np.linalg.qr(rng.normal(size=(10, 10)))
    base = linear_cka(x, y)
    assert linear_cka(x @ q, y) == pytest.approx(base, rel=1e-9)
    assert linear_cka(7.5 * x, 0.1 * y) == pytest.approx(base, rel=1e-9)
    assert linear_cka(x + 3.0, y - 1.0) == pytest.approx(base, rel=1e-9)  # centred
    # ... but not to a non-isotropic scaling, which changes the geometry
    assert linear_cka(x * np.arange(1, 11), y) != pytest.approx(base, rel=1e-3)


def test_undefined_and_bad_shapes():
    x = np.ones((5, 3))
    assert np.isnan(linear_cka(x, np.random.default_rng(0).normal(size=(5, 3))))
    with pytest.raises(ValueError, match="same number of rows"):
        linear_cka(np.zeros((4, 2)), np.zeros((5, 2)))


def test_pooled_states_ignore_padding(assets):
    from transformers import AutoModel, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(assets["xlmr"])
    model = AutoModel.from_pretrained(assets["xlmr"])
    short, long = "w1 w2", "w3 w4 w5 w6 w7 w8"
    alone = pooled_hidden_states(model, [tok([short], return_tensors="pt")])
    padded = pooled_hidden_states(model, [tok([short, long], padding=True, return_tensors="pt")])
    assert len(alone) == model.config.num_hidden_layers + 1  # embeddings + every layer
    assert all(a.shape == (1, model.config.hidden_size) for a in alone)
    for a, b in zip(alone, padded, strict=True):
        torch.testing.assert_close(a[0], b[0], atol=1e-5, rtol=1e-5)
    first = pooled_hidden_states(model, [tok([long], return_tensors="pt")], "first")
    assert not torch.allclose(
        first[1], pooled_hidden_states(model, [tok([long], return_tensors="pt")])[1]
    )
    model.train()  # the caller's mode is restored
    pooled_hidden_states(model, [tok([short], return_tensors="pt")])
    assert model.training
