"""Property tests (hypothesis): broadcasting and indexing gradients against NumPy references."""

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import chainrule as cr

SETTINGS = settings(max_examples=50, deadline=None)


def unbroadcast_ref(g, shape):
    """Sum ``g`` over the axes along which an array of ``shape`` was broadcast (plain NumPy)."""
    lead = g.ndim - len(shape)
    g = g.sum(axis=tuple(range(lead)))
    axes = tuple(i for i, s in enumerate(shape) if s == 1 and g.shape[i] != 1)
    return g.sum(axis=axes, keepdims=True).reshape(shape)


@st.composite
def broadcast_pair(draw):
    shapes = draw(hnp.mutually_broadcastable_shapes(num_shapes=2, min_dims=0, max_dims=4, max_side=4))
    a_shape, b_shape = shapes.input_shapes
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    return rng.standard_normal(a_shape), rng.standard_normal(b_shape), rng.standard_normal(shapes.result_shape)


@SETTINGS
@given(broadcast_pair(), st.sampled_from(["add", "mul", "sub"]))
def test_broadcast_gradients_match_unbroadcast_reference(pair, op):
    a, b, u = pair
    x, y = cr.tensor(a, dtype=np.float64, requires_grad=True), cr.tensor(b, dtype=np.float64, requires_grad=True)
    out = {"add": lambda: x + y, "mul": lambda: x * y, "sub": lambda: x - y}[op]()
    assert out.shape == u.shape
    out.backward(u)
    da, db = {"add": (u, u), "mul": (u * b, u * a), "sub": (u, -u)}[op]
    assert x.grad.shape == a.shape and y.grad.shape == b.shape
    np.testing.assert_allclose(x.grad._data, unbroadcast_ref(da, a.shape), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(y.grad._data, unbroadcast_ref(db, b.shape), rtol=1e-12, atol=1e-12)


@st.composite
def indexed(draw):
    """An array and an index mixing slices, integers and integer arrays (with repeats)."""
    shape = draw(hnp.array_shapes(min_dims=1, max_dims=3, min_side=1, max_side=5))
    parts, array_used = [], False
    for n in shape:
        kind = draw(st.sampled_from(["slice", "int", "array"]))
        if kind == "slice":
            start = draw(st.integers(-n, n))
            stop = draw(st.one_of(st.none(), st.integers(-n, n)))
            step = draw(st.sampled_from([None, 1, 2, -1, -2]))
            parts.append(slice(start, stop, step))
        elif kind == "int":
            parts.append(draw(st.integers(-n, n - 1)))
        elif not array_used:  # one integer array (its length drives repeats); more would need broadcasting
            array_used = True
            parts.append(np.array(draw(st.lists(st.integers(-n, n - 1), min_size=1, max_size=6)), dtype=np.int64))
        else:
            parts.append(slice(None))
    seed = draw(st.integers(0, 2**32 - 1))
    return np.random.default_rng(seed).standard_normal(shape), tuple(parts)


@SETTINGS
@given(indexed())
def test_indexing_gradient_matches_add_at(case):
    a, idx = case
    x = cr.tensor(a, dtype=np.float64, requires_grad=True)
    out = x[idx]
    np.testing.assert_array_equal(out._data, a[idx])
    if out._data.size == 0:
        return
    u = np.random.default_rng(0).standard_normal(out.shape)
    out.backward(u)
    ref = np.zeros_like(a)
    np.add.at(ref, idx, u)
    np.testing.assert_allclose(x.grad._data, ref, rtol=1e-12, atol=1e-12)


@SETTINGS
@given(st.lists(st.integers(0, 4), min_size=1, max_size=12))
def test_repeated_row_gather_accumulates(rows):
    a = np.random.default_rng(len(rows)).standard_normal((5, 3))
    x = cr.tensor(a, dtype=np.float64, requires_grad=True)
    x[np.array(rows)].sum().backward()
    counts = np.bincount(rows, minlength=5).astype(float)
    np.testing.assert_array_equal(x.grad._data, np.repeat(counts[:, None], 3, axis=1))


@SETTINGS
@given(hnp.arrays(np.float64, hnp.array_shapes(min_dims=1, max_dims=3, max_side=5),
                  elements=st.floats(-50, 50)))
def test_softmax_rows_sum_to_one_and_gradient_sums_to_zero(a):
    x = cr.tensor(a, dtype=np.float64, requires_grad=True)
    p = cr.softmax(x, -1)
    np.testing.assert_allclose(p._data.sum(-1), 1.0, rtol=1e-12)
    u = np.random.default_rng(0).standard_normal(a.shape)
    p.backward(u)
    # softmax is shift-invariant along the axis, so its VJP sums to zero along it
    np.testing.assert_allclose(x.grad._data.sum(-1), 0.0, atol=1e-9)
