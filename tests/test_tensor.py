"""The Tensor class and the creation helpers."""

import numpy as np
import pytest

import chainrule as cr


@pytest.mark.parametrize("make", [cr.zeros, cr.ones, cr.empty, cr.randn, cr.rand])
def test_creation_shapes_and_default_dtype(make):
    for args, shape in [((2, 3), (2, 3)), (((2, 3),), (2, 3)), (([4],), (4,)), ((), ())]:
        t = make(*args)
        assert isinstance(t, cr.Tensor) and t.shape == shape and t.dtype == np.float32
        assert not t.requires_grad and t.is_leaf and t.grad is None
    t = make(3, dtype=cr.float64, requires_grad=True)
    assert t.dtype == np.float64 and t.requires_grad


def test_creation_values():
    np.testing.assert_array_equal(cr.zeros(2, 2)._data, np.zeros((2, 2)))
    np.testing.assert_array_equal(cr.ones(3)._data, np.ones(3))
    np.testing.assert_array_equal(cr.full((2,), 7.5)._data, [7.5, 7.5])
    assert cr.full(3, 1.0).shape == (3,)
    np.testing.assert_array_equal(cr.eye(3)._data, np.eye(3))
    assert cr.eye(2, 3).shape == (2, 3)
    np.testing.assert_allclose(cr.linspace(0, 1, 5)._data, [0, 0.25, 0.5, 0.75, 1.0])
    a = cr.arange(5)
    assert a.dtype == np.int64 and a.tolist() == [0, 1, 2, 3, 4]
    assert cr.arange(2, 8, 2).tolist() == [2, 4, 6]
    f = cr.arange(0, 1, 0.25)
    assert f.dtype == np.float32 and f.shape == (4,)
    r = cr.rand(1000)
    assert 0 <= r._data.min() and r._data.max() < 1
    ri = cr.randint(0, 3, (50,))
    assert ri.dtype == np.int64 and set(ri.tolist()) <= {0, 1, 2}


def test_like_helpers():
    x = cr.randn(2, 3, dtype=cr.float64)
    for make in (cr.zeros_like, cr.ones_like, cr.randn_like):
        y = make(x)
        assert y.shape == (2, 3) and y.dtype == np.float64
    np.testing.assert_array_equal(cr.full_like(x, 2.0)._data, np.full((2, 3), 2.0))
    assert cr.zeros_like(x, dtype=np.float32).dtype == np.float32
    assert cr.zeros_like(np.ones((4,), np.int32)).dtype == np.int32


def test_tensor_constructor_dtypes():
    assert cr.tensor([1.0, 2.0]).dtype == np.float32
    assert cr.tensor(np.array([1.0, 2.0])).dtype == np.float32  # documented: float64 data -> float32
    assert cr.tensor(np.array([1.0]), dtype=np.float64).dtype == np.float64
    assert cr.tensor([1, 2]).dtype == np.int64
    assert cr.tensor(np.array([1], np.int32)).dtype == np.int64
    assert cr.tensor([True, False]).dtype == np.bool_
    assert cr.tensor(3.5).shape == () and cr.tensor(3.5).item() == 3.5
    assert cr.tensor(np.float16([1.0])).dtype == np.float16
    with pytest.raises(TypeError, match="non-numbers"):
        cr.tensor([object()])


def test_tensor_copies_and_as_tensor_shares():
    a = np.ones(3, np.float32)
    t = cr.tensor(a)
    a[0] = 5
    assert t._data[0] == 1
    s = cr.as_tensor(a)
    a[1] = 7
    assert s._data[1] == 7
    assert cr.as_tensor(s) is s
    assert cr.as_tensor(np.ones(2)).dtype == np.float32
    stacked = cr.tensor([cr.tensor([1.0, 2.0]), cr.tensor([3.0, 4.0])])
    assert stacked.shape == (2, 2)


def test_manual_seed_reproducibility():
    cr.manual_seed(123)
    a, b = cr.randn(4, 3), cr.rand(2)
    c = cr.randint(0, 10, 5)
    cr.manual_seed(123)
    np.testing.assert_array_equal(cr.randn(4, 3)._data, a._data)
    np.testing.assert_array_equal(cr.rand(2)._data, b._data)
    np.testing.assert_array_equal(cr.randint(0, 10, 5)._data, c._data)
    cr.manual_seed(124)
    assert not np.array_equal(cr.randn(4, 3)._data, a._data)
    g = cr.manual_seed(5)
    assert g is cr.get_rng() and isinstance(g, np.random.Generator)


def test_repr_is_readable():
    r = repr(cr.tensor([1.0, 2.5]))
    assert r.startswith("tensor(") and "1." in r and "2.5" in r and "dtype" not in r
    assert "dtype=float64" in repr(cr.tensor([1.0], dtype=np.float64))
    assert "dtype" not in repr(cr.tensor([1, 2])) and "dtype=int32" in repr(cr.tensor([1, 2], dtype=cr.int32))  # torch's
    assert "requires_grad=True" in repr(cr.tensor([1.0], requires_grad=True))
    assert "grad_fn=<MulBackward0>" in repr(cr.tensor([1.0], requires_grad=True) * 2.0)
    big = repr(cr.zeros(5000))  # summarised past 1000 elements, like numpy and torch
    assert "..." in big and len(big) < 400


def test_T_item_numpy():
    x = cr.tensor(np.arange(6.0).reshape(2, 3))
    assert x.T.shape == (3, 2)
    np.testing.assert_array_equal(x.T._data, x._data.T)
    assert cr.tensor([[4.0]]).item() == 4.0 and isinstance(cr.tensor(3).item(), int)
    with pytest.raises(ValueError, match="one-element"):
        x.item()
    n = x.numpy()
    assert isinstance(n, np.ndarray) and n is x._data  # shared memory, like torch
    assert float(cr.tensor([2.5])) == 2.5 and int(cr.tensor(3)) == 3
    assert np.asarray(x).shape == (2, 3)
    assert len(x) == 2 and [r.shape for r in x] == [(3,), (3,)]
    assert x.ndim == 2 and x.size() == (2, 3) and x.size(1) == 3 and x.size().numel() == 6 and x.numel() == 6 and x.dim() == 2
    with pytest.raises(TypeError, match="0-d"):
        len(cr.tensor(1.0))
    assert [10, 20, 30][cr.tensor(1)] == 20
    with pytest.raises(TypeError, match="integer"):
        [1, 2][cr.tensor(1.0)]


def test_inplace_ops_under_no_grad():
    w = cr.tensor([1.0, 2.0], requires_grad=True)
    for op in (lambda: w.add_(1.0), lambda: w.mul_(2.0), lambda: w.zero_(), lambda: w.fill_(1.0),
               lambda: w.copy_(np.ones(2))):
        with pytest.raises(RuntimeError, match="no_grad"):
            op()
    with pytest.raises(RuntimeError, match="no_grad"):
        w += 1.0
    with cr.no_grad():
        data = w._data
        w += 1.0
        w -= 0.5
        w *= 2.0
        w /= 4.0
        assert w._data is data  # same buffer, updated in place
        np.testing.assert_allclose(w._data, [0.75, 1.25])
        w.add_(cr.tensor([1.0, 1.0]), alpha=-2.0)
        np.testing.assert_allclose(w._data, [-1.25, -0.75])
        w.mul_(np.float64(2.0))
        assert w.dtype == np.float32
        w.copy_(cr.tensor([3.0, 4.0]))
        np.testing.assert_array_equal(w._data, [3.0, 4.0])
        w.fill_(0.5)
        np.testing.assert_array_equal(w._data, [0.5, 0.5])
        w[0] = 9.0
        np.testing.assert_array_equal(w._data, [9.0, 0.5])
        w.zero_()
        np.testing.assert_array_equal(w._data, [0.0, 0.0])
    assert w.requires_grad and w.is_leaf
    plain = cr.zeros(3)
    plain += 1.0  # no grad required: allowed while recording
    plain[1] = 5.0
    np.testing.assert_array_equal(plain._data, [1.0, 5.0, 1.0])


def test_setitem_on_recorded_tensor_refused():
    h = cr.tensor([1.0, 2.0], requires_grad=True) * 2.0
    with pytest.raises(RuntimeError):
        h[0] = 0.0


def test_detach():
    x = cr.tensor([1.0, 2.0], requires_grad=True)
    y = x * 3.0
    d = y.detach()
    assert d.is_leaf and not d.requires_grad and d.grad_fn is None
    assert d._data is y._data or np.shares_memory(d._data, y._data)
    z = (d * x).sum()
    z.backward()
    np.testing.assert_allclose(x.grad._data, d._data)  # no gradient flowed through d
    with pytest.raises(RuntimeError, match="detach"):
        y.requires_grad_(False)
    y2 = x * 2.0
    y2.detach_()
    assert y2.is_leaf and not y2.requires_grad


def test_clone_and_casts():
    x = cr.tensor([1.0, 2.0], requires_grad=True)
    c = x.clone()
    assert c._data is not x._data and c.requires_grad
    c.sum().backward()
    np.testing.assert_array_equal(x.grad._data, [1.0, 1.0])
    assert x.double().dtype == np.float64 and x.double().float().dtype == np.float32
    assert x.long().dtype == np.int64 and not x.long().requires_grad
    assert x.to(np.float64).dtype == np.float64


def test_grad_fn_and_leaf_properties():
    x = cr.tensor([1.0], requires_grad=True)
    y = cr.exp(x)
    assert x.is_leaf and not y.is_leaf
    assert y.grad_fn.name() == "ExpBackward0" and y.grad_fn.op.name == "exp" and x.grad_fn is None
    assert cr.tensor([1.0]) * 2.0 is not None and not (cr.tensor([1.0]) * 2.0).requires_grad


def test_comparison_and_logic_dunders():
    a, b = cr.tensor([1.0, 2.0, 3.0]), cr.tensor([3.0, 2.0, 1.0])
    np.testing.assert_array_equal((a < b)._data, [True, False, False])
    np.testing.assert_array_equal((a == b)._data, [False, True, False])
    np.testing.assert_array_equal(((a > 1.5) & (b > 1.5))._data, [False, True, False])
    np.testing.assert_array_equal(((a > 2.5) | (b > 2.5))._data, [True, False, True])
    np.testing.assert_array_equal((~(a > 1.5))._data, [True, False, False])
    assert (a > 0).all().item() and not (a > 2).all().item() and (a > 2).any().item()
