"""cr.compile and the library's own branches on values (modes.branch): cross_entropy's lean path is
taken when every label is a class; a replay re-checks that on every call and falls back to eager
(bit-identical, the random stream untouched) when it does not hold, or raises when it cannot."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

import chainrule as cr
from chainrule import nn
from chainrule.modes import branch
from chainrule.nn import functional as F
from chainrule.replay import BranchAfterEffects


def _batches(n=6, b=8, d=5, k=4, seed=0):
    rng = np.random.default_rng(seed)
    return [(cr.tensor(rng.standard_normal((b, d)).astype(np.float32)), cr.tensor(rng.integers(0, k, b)))
            for _ in range(n)]


def _run(compiled, loss_fn, batches, dropout=0.0):
    cr.manual_seed(0)
    layers = [nn.Linear(5, 8), nn.ReLU()] + ([nn.Dropout(dropout)] if dropout else []) + [nn.Linear(8, 4)]
    model = nn.Sequential(*layers)
    opt = cr.optim.Adam(model.parameters(), lr=0.05)

    def step(x, y):
        opt.zero_grad()
        loss = loss_fn(model(x), y)
        loss.backward()
        opt.step()
        return loss

    run = cr.compile(step, warn=False) if compiled else step
    cr.manual_seed(3)  # dropout's stream
    out = []
    for x, y in batches:
        try:
            out.append(run(x, y)._data.copy())
        except ValueError as e:  # the same error, eager or compiled
            out.append(str(e))
    return out, [p._data.copy() for p in model.parameters()], run


def _same(a, b):
    return len(a) == len(b) and all(
        (x == y) if isinstance(x, str) else (not isinstance(y, str) and np.array_equal(x, y)) for x, y in zip(a, b))


@pytest.mark.parametrize("dropout", [0.0, 0.3])
def test_ignored_labels_after_recording_fall_back_to_eager_bit_for_bit(dropout):
    batches = _batches()
    batches[3][1]._data[[1, 5]] = -100  # recorded on the lean path; this batch needs the general one
    losses, params, run = _run(True, F.cross_entropy, batches, dropout)
    want_losses, want_params, _ = _run(False, F.cross_entropy, batches, dropout)
    assert _same(losses, want_losses) and _same(params, want_params)
    assert run.calls == {"recorded": 2, "replayed": 3, "eager": 1}
    assert "_labels_below(v1" in run.code  # the branch is re-checked, before any random draw
    if dropout:
        assert run.code.index("_labels_below") < run.code.index("dropout_mask")


def test_the_fallback_warns_once_per_branch():
    batches = _batches(n=7)
    for k in (3, 5):
        batches[k][1]._data[0] = -100
    _, _, step = _run(False, F.cross_entropy, batches[:1])
    run = cr.compile(step)
    with warnings.catch_warnings(record=True) as got:
        warnings.simplefilter("always")
        for x, y in batches:
            run(x, y)
    said = [str(w.message) for w in got if "cr.compile" in str(w.message)]
    assert len(said) == 1 and "ignore_index or out of range" in said[0], said
    assert run.calls["eager"] == 2


@pytest.mark.parametrize("loss", ["cross_entropy", "nll_loss", "smoothing"])
def test_out_of_range_labels_raise_on_replay_as_in_eager(loss):
    fn = {"cross_entropy": F.cross_entropy, "smoothing": lambda z, y: F.cross_entropy(z, y, label_smoothing=0.1),
          "nll_loss": lambda z, y: F.nll_loss(F.log_softmax(z, dim=1), y)}[loss]
    batches = _batches()
    for _, y in batches:  # every batch has an ignored label: the general path, replayed
        y._data[0] = -100
    batches[4][1]._data[2] = 9
    got, params, run = _run(True, fn, batches)
    want, want_params, _ = _run(False, fn, batches)
    assert _same(got, want) and _same(params, want_params)
    assert "out of range for 4 classes" in got[4]
    assert run.calls["replayed"] == 3 and run.calls["eager"] == 1  # the general path replays now


def test_a_branch_after_the_update_cannot_fall_back_and_says_so():
    cr.manual_seed(0)
    model = nn.Linear(5, 4)
    opt = cr.optim.SGD(model.parameters(), lr=0.1)

    def step(x, y):
        opt.zero_grad()
        F.cross_entropy(model(x), y).backward()
        opt.step()
        with cr.no_grad():  # the loss after the update, on labels computed inside the step
            return F.cross_entropy(model(x), y - 1)

    run = cr.compile(step, warn=False)
    batches = _batches()
    for _, y in batches:
        y._data[:] = np.maximum(y._data, 1)  # labels 1..3: both losses' labels are classes
    batches[4][1]._data[0] = 0  # a class for the first loss, -1 for the second
    for x, y in batches[:4]:
        run(x, y)
    assert run.calls["replayed"] == 2
    with pytest.raises(BranchAfterEffects, match="ignore_index or out of range on this call"):
        run(*batches[4])


def test_ignore_index_that_is_a_class_is_ignored(torch):
    rng = np.random.default_rng(1)
    z, y = rng.standard_normal((6, 5)).astype(np.float32), np.array([0, 3, 3, 1, 4, 3])
    want = torch.nn.functional.cross_entropy(torch.from_numpy(z), torch.from_numpy(y), ignore_index=3)
    got = F.cross_entropy(cr.tensor(z), cr.tensor(y), ignore_index=3)
    np.testing.assert_allclose(got.item(), want.item(), rtol=1e-6)


def test_branch_outside_a_recording_is_the_test():
    assert branch(np.array_equal, np.ones(2), np.ones(2), what="x") is True
    assert branch(np.array_equal, np.ones(2), np.zeros(2), what="x") is False


def _compare(make, calls):
    """Run ``make()``'s step eagerly and compiled on the same calls: results (or error texts) and
    parameters must be equal; returns the Compiled."""
    def run(compiled):
        step, params = make()
        f = cr.compile(step, warn=False) if compiled else step
        out = []
        for args in calls:
            try:
                out.append(f(*args)._data.copy())
            except (ValueError, IndexError) as e:
                out.append(f"{type(e).__name__}: {e}")
        return out, [p._data.copy() for p in params], f
    want, want_params, _ = run(False)
    got, params, f = run(True)
    assert _same(got, want) and _same(params, want_params), (got, want)
    return f, got


def _embedding_step(pad=None, bag=False):
    def make():
        cr.manual_seed(0)
        emb = nn.EmbeddingBag(10, 3, mode="sum") if bag else nn.Embedding(10, 3, padding_idx=pad)
        opt = cr.optim.AdamW(emb.parameters(), lr=0.1, weight_decay=0.1)

        def step(idx, *offsets):
            opt.zero_grad()
            loss = (emb(idx, *offsets) ** 2).sum()
            loss.backward()
            opt.step()
            return loss
        return step, list(emb.parameters())
    return make


def test_an_embedding_batch_that_first_holds_padding_idx_runs_eagerly():
    idx = [cr.tensor(np.array([[1, 2, 3], [4, 5, 6]])) for _ in range(6)]
    idx[3]._data[0, 1] = 0  # padding_idx 0: its row must pass no gradient on this call
    f, _ = _compare(_embedding_step(pad=0), [(i,) for i in idx])
    assert f.calls == {"recorded": 2, "replayed": 3, "eager": 1}


def test_an_embedding_index_out_of_range_raises_on_replay():
    idx = [cr.tensor(np.array([[1, 2], [3, 4]])) for _ in range(5)]
    idx[3]._data[1, 1] = 12
    f, got = _compare(_embedding_step(), [(i,) for i in idx])
    assert got[3].startswith("IndexError: embedding: index 12 is out of range for 10 embeddings")


def test_embedding_bag_offsets_that_change_after_recording_run_eagerly():
    idx = cr.tensor(np.array([1, 2, 3, 4, 5, 6]))
    offs = [np.array([0, 2, 4])] * 3 + [np.array([0, 1, 5])] + [np.array([0, 2, 4])] * 2
    f, _ = _compare(_embedding_step(bag=True), [(idx, cr.tensor(o)) for o in offs])
    assert f.calls == {"recorded": 2, "replayed": 3, "eager": 1}


def test_one_hot_with_inferred_classes_follows_the_labels():
    def make():
        w = cr.tensor(np.full(1, 2.0, np.float32))
        return (lambda y: (F.one_hot(y).float() * w).sum(0)), [w]
    ys = [cr.tensor(np.array([0, 2, 1])), cr.tensor(np.array([2, 1, 0])), cr.tensor(np.array([1, 1, 2])),
          cr.tensor(np.array([0, 4, 1])), cr.tensor(np.array([2, 0, 0])), cr.tensor(np.array([0, -1, 1]))]
    f, got = _compare(make, [(y,) for y in ys])
    assert got[3].shape == (5,) and got[4].shape == (3,)
    assert got[5].startswith("ValueError: one_hot: label -1 is out of range")
    assert f.calls == {"recorded": 2, "replayed": 2, "eager": 2}


def test_binary_cross_entropy_refuses_a_non_probability_on_replay():
    def make():
        w = cr.tensor(np.full(4, 0.5, np.float32), requires_grad=True)

        def step(p, t):
            loss = F.binary_cross_entropy(p * w * 2, t)
            loss.backward()
            return loss
        return step, [w]
    t = cr.tensor(np.array([0, 1, 1, 0], np.float32))
    ps = [cr.tensor(np.array([0.2, 0.7, 0.9, 0.1], np.float32)) for _ in range(5)]
    ps[3]._data[2] = 1.5
    f, got = _compare(make, [(p, t) for p in ps])
    assert got[3].startswith("ValueError: binary_cross_entropy: input must be probabilities")
    assert f.calls["replayed"] == 2 and f.calls["eager"] == 1
