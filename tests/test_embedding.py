"""Embedding and EmbeddingBag against torch 2.13, the one-hot identity, finite differences, errors."""

import numpy as np
import pytest
from test_examples import run as run_example

import chainrule as cr
import chainrule.nn.functional as F
from chainrule import nn

DT = {np.float32: cr.float32, np.float64: cr.float64}
IDX = np.array([[1, 2, 2, 0], [3, 6, 1, 1]])
BAG_INPUT, BAG_OFFSETS = np.array([1, 2, 4, 5, 4, 3, 2, 0, 2]), np.array([0, 2, 2, 5])  # bag 1 is empty


def _close(a, b, dtype):
    tol = dict(rtol=1e-5, atol=1e-6) if dtype == np.float32 else dict(rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(np.asarray(a), np.asarray(b), **tol)


def _both(torch, rng, dtype, f_torch, f_cr):
    """Run a lookup in both libraries on the same (7, 4) weight; compare output and weight gradient."""
    w = rng.standard_normal((7, 4)).astype(dtype)
    wt, wc = torch.tensor(w, requires_grad=True), cr.tensor(w, dtype=DT[dtype], requires_grad=True)
    ot, oc = f_torch(wt), f_cr(wc)
    assert oc.shape == tuple(ot.shape)
    _close(oc.numpy(), ot.detach().numpy(), dtype)
    g = rng.standard_normal(tuple(ot.shape)).astype(dtype)
    ot.backward(torch.tensor(g))
    oc.backward(cr.tensor(g, dtype=DT[dtype]))
    _close(wc.grad.numpy(), wt.grad.numpy(), dtype)
    return wc.grad.numpy()


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("padding_idx", [None, 2, -5])
@pytest.mark.parametrize("idx", [IDX, IDX[0], np.array(3)], ids=["2d", "1d", "0d"])
def test_embedding_matches_torch(torch, rng, dtype, padding_idx, idx):
    g = _both(torch, rng, dtype, lambda w: torch.nn.functional.embedding(torch.tensor(idx), w, padding_idx),
              lambda w: F.embedding(idx, w, padding_idx))
    if padding_idx is not None:
        assert not g[padding_idx % 7].any()  # the padding row gets no gradient, although it is looked up


def test_repeated_indices_accumulate_like_the_one_hot_product(rng):
    # phi(word) = onehot(word): onehot @ W is the lookup, and its gradient W^T-side is onehot^T @ G
    w = cr.tensor(rng.standard_normal((7, 4)), dtype=cr.float64, requires_grad=True)
    idx = np.array([1, 1, 1, 5])
    out = F.embedding(idx, w)
    onehot = np.eye(7)[idx]
    np.testing.assert_allclose(out.numpy(), onehot @ w.numpy())
    g = rng.standard_normal((4, 4))
    out.backward(cr.tensor(g, dtype=cr.float64))
    np.testing.assert_allclose(w.grad.numpy(), onehot.T @ g)
    assert cr.gradcheck(lambda w: F.embedding(idx, w), [cr.tensor(w.numpy(), dtype=cr.float64, requires_grad=True)])


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("mode", ["sum", "mean", "max"])
@pytest.mark.parametrize("padding_idx", [None, 2])
@pytest.mark.parametrize("include_last_offset", [False, True])
def test_embedding_bag_offsets_match_torch(torch, rng, dtype, mode, padding_idx, include_last_offset):
    off = np.append(BAG_OFFSETS, len(BAG_INPUT)) if include_last_offset else BAG_OFFSETS
    kw = dict(mode=mode, padding_idx=padding_idx, include_last_offset=include_last_offset)
    _both(torch, rng, dtype,
          lambda w: torch.nn.functional.embedding_bag(torch.tensor(BAG_INPUT), w, torch.tensor(off), **kw),
          lambda w: F.embedding_bag(BAG_INPUT, w, off, **kw))


@pytest.mark.parametrize("mode", ["sum", "mean", "max"])
@pytest.mark.parametrize("padding_idx", [None, 1])
def test_embedding_bag_2d_matches_torch(torch, rng, mode, padding_idx):
    _both(torch, rng, np.float64, lambda w: torch.nn.functional.embedding_bag(torch.tensor(IDX), w, mode=mode,
                                                                             padding_idx=padding_idx),
          lambda w: F.embedding_bag(IDX, w, mode=mode, padding_idx=padding_idx))


def test_per_sample_weights_match_torch(torch, rng):
    psw = rng.standard_normal(len(BAG_INPUT))
    pt, pc = torch.tensor(psw, requires_grad=True), cr.tensor(psw, dtype=cr.float64, requires_grad=True)
    _both(torch, rng, np.float64,
          lambda w: torch.nn.functional.embedding_bag(torch.tensor(BAG_INPUT), w, torch.tensor(BAG_OFFSETS),
                                                      mode="sum", per_sample_weights=pt),
          lambda w: F.embedding_bag(BAG_INPUT, w, BAG_OFFSETS, mode="sum", per_sample_weights=pc))
    _close(pc.grad.numpy(), pt.grad.numpy(), np.float64)


def test_bag_of_words_sum_is_counts_times_matrix(rng):
    w = rng.standard_normal((7, 3))
    out = F.embedding_bag(IDX, cr.tensor(w, dtype=cr.float64), mode="sum")
    counts = np.stack([np.bincount(row, minlength=7) for row in IDX])
    np.testing.assert_allclose(out.numpy(), counts @ w)


def test_modules_state_dict_init_and_from_pretrained(torch, rng):
    cr.manual_seed(0)
    e = nn.Embedding(50, 8, padding_idx=3)
    assert list(e.state_dict()) == list(torch.nn.Embedding(50, 8).state_dict()) == ["weight"]
    assert not e.weight.numpy()[3].any() and abs(e.weight.numpy().std() - 1) < 0.15  # N(0, 1), pad row zero
    te = torch.nn.Embedding(50, 8, padding_idx=3)
    e.load_state_dict(te.state_dict())
    np.testing.assert_array_equal(e(IDX).numpy(), te(torch.tensor(IDX)).detach().numpy())
    te.load_state_dict({k: torch.tensor(v.numpy()) for k, v in e.state_dict().items()})
    bag, tbag = nn.EmbeddingBag(50, 8, mode="sum"), torch.nn.EmbeddingBag(50, 8, mode="sum")
    bag.load_state_dict(tbag.state_dict())
    _close(bag(BAG_INPUT, BAG_OFFSETS).numpy(),
           tbag(torch.tensor(BAG_INPUT), torch.tensor(BAG_OFFSETS)).detach().numpy(), np.float32)
    w = rng.standard_normal((5, 2))
    p = nn.Embedding.from_pretrained(cr.tensor(w, dtype=cr.float64))
    assert not p.weight.requires_grad and p.weight.dtype == np.float64
    np.testing.assert_array_equal(p(np.array([4, 0])).numpy(), w[[4, 0]])
    assert nn.EmbeddingBag.from_pretrained(w, freeze=False, mode="max").weight.requires_grad


def test_errors():
    e = nn.Embedding(5, 2)
    with pytest.raises(IndexError, match=r"index 5 is out of range for 5 embeddings \(valid: 0 .. 4"):
        e(np.array([0, 5]))
    with pytest.raises(IndexError, match="index -1 is out of range"):
        e(np.array([-1]))
    with pytest.raises(TypeError, match="indices must be integers"):
        e(np.array([0.5]))
    with pytest.raises(ValueError, match=r"padding_idx must be within \[-5, 5\)"):
        nn.Embedding(5, 2, padding_idx=5)
    with pytest.raises(ValueError, match="max_norm=1.0 is not supported"):
        nn.Embedding(5, 2, max_norm=1.0)
    with pytest.raises(ValueError, match="mode must be 'sum', 'mean' or 'max'"):
        nn.EmbeddingBag(5, 2, mode="median")
    with pytest.raises(ValueError, match="offsets must start at 0 and be non-decreasing"):
        F.embedding_bag(np.array([1, 2]), e.weight, np.array([1]))
    with pytest.raises(ValueError, match="1-D with offsets"):
        F.embedding_bag(np.array([1, 2]), e.weight)
    with pytest.raises(ValueError, match="per_sample_weights is only supported with mode='sum'"):
        F.embedding_bag(IDX % 5, e.weight, per_sample_weights=np.ones(IDX.shape))


def test_embeddings_example_learned_phi_beats_one_hot():
    r = run_example("11_embeddings.py")
    onehot, learned = r["acc"]["one-hot bag of words + logistic"], r["acc"]["learned phi (Embedding) + GRU"]
    assert learned["held-out"] > onehot["held-out"] + 0.2, r
    assert learned["held-out"] > 0.9
    assert r["cos_synonyms"] > r["cos_antonyms"]  # synonyms end up closer than antonyms
