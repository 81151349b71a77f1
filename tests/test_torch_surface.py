"""The PyTorch surface of issue 15, each item against torch 2.13 itself: dtype aliases, devices, the
calling convention (dim/keepdim, positional attributes, keyword tensors), Tensor methods,
autograd.Function, .data, .grad assignment, in-place ops on non-leaves, grad_fn."""

import numpy as np
import pytest

import chainrule as cr
import chainrule.nn as nn
import chainrule.nn.functional as F

X = np.arange(12, dtype=np.float32).reshape(3, 4) / 7 - 0.5


def _both(torch):
    return cr.tensor(X), torch.tensor(X)


def _eq(a, b, rtol=1e-6):
    a = a.numpy() if isinstance(a, cr.Tensor) else np.asarray(a)
    b = b.detach().numpy() if hasattr(b, "detach") else np.asarray(b)
    assert a.shape == b.shape, (a.shape, b.shape)
    np.testing.assert_allclose(a, b, rtol=rtol, atol=1e-7)


@pytest.mark.parametrize("name", ["float", "double", "half", "long", "int", "short", "bool", "uint8", "int8",
                                  "float32", "float64", "float16", "int64", "int32"])
def test_dtype_aliases_name_torchs_dtypes(torch, name):
    t = torch.zeros(2, dtype=getattr(torch, name))
    c = cr.zeros(2, dtype=getattr(cr, name))
    assert c.dtype == np.dtype(str(t.dtype).removeprefix("torch.").replace("bool", "bool_")) or str(c.dtype) == str(
        t.numpy().dtype)


def test_devices_are_cpu_and_cuda_is_refused_in_one_line(torch):
    d = cr.device("cpu")
    assert d == cr.device("cpu") and str(d) == str(torch.device("cpu")) and d.type == "cpu"
    assert cr.cuda.is_available() is torch.cuda.is_available() is False
    assert cr.backends.mps.is_available() is False and cr.accelerator.is_available() is False
    x = cr.randn(2, 3, device=d, dtype=cr.float64)
    assert x.device == d and x.dtype == cr.float64 and x.to(d) is x and x.cpu() is x
    assert x.to("cpu", cr.float32).dtype == cr.float32 and x.to(d, dtype=cr.float32).dtype == cr.float32
    for make in (cr.zeros, cr.ones, cr.empty, cr.rand, cr.randn):
        assert make(2, device="cpu").shape == (2,)
    assert cr.tensor([1.0], device="cpu").device.type == "cpu"
    assert cr.full((2,), 3.0, device="cpu").shape == (2,) and cr.arange(3, device="cpu").dtype == cr.int64
    assert cr.linspace(0, 1, 5, device="cpu").shape == (5,) and cr.eye(3, device="cpu").shape == (3, 3)
    with pytest.raises(RuntimeError, match="not available"):
        cr.device("cuda")
    with pytest.raises(RuntimeError, match="not available"):
        cr.zeros(2, device="cuda:0")
    m = nn.Linear(3, 2).to(cr.device("cpu"))
    assert m.to("cpu", cr.float64).weight.dtype == cr.float64
    cr.set_default_device("cpu")
    assert cr.get_default_device() == "cpu"


def test_positional_attributes_are_attributes_not_tensors(torch):
    c, t = _both(torch)
    _eq(cr.sum(c, 0), torch.sum(t, 0))
    _eq(cr.sum(c, 1, True), torch.sum(t, 1, True))
    _eq(cr.sum(c, dim=1, keepdim=True), torch.sum(t, dim=1, keepdim=True))
    _eq(cr.reshape(c, (6, 2)), torch.reshape(t, (6, 2)))
    _eq(cr.transpose(c, 0, 1), torch.transpose(t, 0, 1))
    _eq(cr.broadcast_to(c[0], (2, 4)), torch.broadcast_to(t[0], (2, 4)))
    _eq(cr.argmax(c, dim=1), torch.argmax(t, dim=1))
    _eq(cr.argmax(c, 1), torch.argmax(t, 1))
    _eq(F.softmax(c, dim=1), torch.nn.functional.softmax(t, dim=1))
    _eq(F.log_softmax(c, 1), torch.nn.functional.log_softmax(t, 1))
    _eq(cr.cat([c, c], dim=0), torch.cat([t, t], dim=0))
    _eq(cr.stack([c, c], dim=1), torch.stack([t, t], dim=1))
    _eq(cr.mean(c, dim=0, keepdim=True), torch.mean(t, dim=0, keepdim=True))
    _eq(cr.matmul(input=c, other=c.T), torch.matmul(input=t, other=t.T))
    _eq(cr.permute(c, (1, 0)), torch.permute(t, (1, 0)))
    _eq(cr.squeeze(cr.unsqueeze(c, dim=0), dim=0), t)
    with pytest.raises(TypeError, match="unexpected argument"):
        cr.sum(c, axes=0)


def test_max_and_min_with_dim_return_values_and_indices(torch):
    c, t = _both(torch)
    for fn in ("max", "min"):
        got, want = getattr(cr, fn)(c, 1), getattr(torch, fn)(t, 1)
        _eq(got.values, want.values)
        _eq(got.indices, want.indices)
        v, i = getattr(c, fn)(dim=0, keepdim=True)
        wv, wi = getattr(t, fn)(dim=0, keepdim=True)
        _eq(v, wv)
        _eq(i, wi)
        _eq(getattr(cr, fn)(c), getattr(torch, fn)(t))
        _eq(getattr(cr, fn)(c, c * 0.5), getattr(torch, fn)(t, t * 0.5))
    _, predicted = cr.max(c.data, 1)  # the tutorials' idiom
    assert predicted.dtype == cr.int64


def test_tensor_methods_as_torch(torch):
    c, t = _both(torch)
    assert c.size() == t.size() and c.size(1) == t.size(1) and c.size(-1) == 4 and c.shape == t.shape
    assert c.dim() == t.dim() and c.numel() == t.numel() and c.size().numel() == t.size().numel()
    _eq(c.mm(c.t()), t.mm(t.t()))
    _eq(c.view(-1), t.view(-1))
    _eq(c.type(cr.float64), t.type(torch.float64))
    assert c.type() == t.type() == "torch.FloatTensor"
    assert cr.from_numpy(X).numpy() is X or np.shares_memory(cr.from_numpy(X).numpy(), X)
    assert c[0, 1].item() == t[0, 1].item() and c.tolist() == t.tolist()
    assert f"{c[0, 1]:+.2f}" == f"{t[0, 1]:+.2f}"
    assert sum([cr.tensor(1.0), cr.tensor(2.0)]).item() == sum([torch.tensor(1.0), torch.tensor(2.0)]).item()
    _eq(c.float().double(), t.float().double())
    _eq(c.long(), t.long())
    _eq(c.clamp(min=0.0), t.clamp(min=0.0))
    _eq(c.norm(), t.norm())
    _eq(c.repeat(2, 1), t.repeat(2, 1))
    _eq(c.expand_as(cr.zeros(2, 3, 4)), t.expand_as(torch.zeros(2, 3, 4)))


def test_data_is_a_detached_tensor_sharing_memory(torch):
    p = nn.Parameter(cr.tensor([1.0, 2.0]))
    (p * p).sum().backward()
    p.data -= 0.5 * p.grad
    tp = torch.nn.Parameter(torch.tensor([1.0, 2.0]))
    (tp * tp).sum().backward()
    tp.data -= 0.5 * tp.grad
    _eq(p, tp)
    p.data.add_(1.0)
    tp.data.add_(1.0)
    _eq(p, tp)
    d = p.data
    assert isinstance(d, cr.Tensor) and not d.requires_grad and np.shares_memory(d.numpy(), p.numpy())
    p.data.zero_()
    assert p.sum().item() == 0
    assert np.asarray(p).dtype == np.float32


def test_grad_assignment_is_checked_at_once(torch):
    p = cr.zeros(3, requires_grad=True)
    with pytest.raises(TypeError, match="Tensor or None"):
        p.grad = 1.0
    with pytest.raises(ValueError, match="shape"):
        p.grad = cr.zeros(2)
    tp = torch.zeros(3, requires_grad=True)
    with pytest.raises((TypeError, RuntimeError)):
        tp.grad = 1.0
    p.grad = cr.ones(3)
    p.grad.zero_()
    assert p.grad.sum().item() == 0
    p.grad = None
    (p * 2).sum().backward()
    _eq(p.grad, np.full(3, 2.0))


def test_inplace_on_a_recorded_tensor_records_the_op(torch):
    # micrograd's test_more_ops, with += on non-leaves
    def run(lib, double):
        a = lib.tensor([-4.0], dtype=double, requires_grad=True)
        b = lib.tensor([2.0], dtype=double, requires_grad=True)
        c = a + b
        d = a * b + b ** 3
        c += c + 1
        c += 1 + c + (-a)
        d += d * 2 + (b + a).relu()
        d += 3 * d + (b - a).relu()
        e = c - d
        f = e ** 2
        g = f / 2.0
        g += 10.0 / f
        g.backward()
        return g, a.grad, b.grad
    for x, y in zip(run(cr, cr.float64), run(torch, torch.float64)):
        _eq(x, y, rtol=1e-12)
    with pytest.raises(RuntimeError, match="leaf"):
        w = cr.zeros(2, requires_grad=True)
        w += 1


def test_backward_gradient_keyword_and_ints_in_the_loss(torch):
    a, ta = cr.tensor([2.0, 3.0], requires_grad=True), torch.tensor([2.0, 3.0], requires_grad=True)
    q, tq = 3 * a ** 3 - 2, 3 * ta ** 3 - 2
    q.backward(gradient=cr.tensor([1.0, 1.0]))
    tq.backward(gradient=torch.tensor([1.0, 1.0]))
    _eq(a.grad, ta.grad)
    total = sum(x * 2 for x in [a, a]) + 1
    total.sum().backward()
    assert a.grad.shape == (2,)


def test_grad_fn_and_next_functions(torch):
    x = cr.tensor([1.0, 2.0], requires_grad=True)
    y = (x * 2).sum()
    assert y.grad_fn.name() == "SumBackward0" and repr(y.grad_fn) == "<SumBackward0>"
    (mul, _), = y.grad_fn.next_functions
    assert mul.name() == "MulBackward0"
    (acc, _), (const, _) = mul.next_functions
    assert acc.name() == "AccumulateGrad" and acc.variable is x and const is None
    tx = torch.tensor([1.0, 2.0], requires_grad=True)
    ty = (tx * 2).sum()
    assert type(ty.grad_fn).__name__ == y.grad_fn.name()
    assert "grad_fn=<SumBackward0>" in repr(y)


class _Legendre3:
    """The "Learning PyTorch with examples" custom Function, for either library."""

    @staticmethod
    def make(lib):
        class LegendrePolynomial3(lib.autograd.Function):
            @staticmethod
            def forward(ctx, input):
                ctx.save_for_backward(input)
                return 0.5 * (5 * input ** 3 - 3 * input)

            @staticmethod
            def backward(ctx, grad_output):
                (input,) = ctx.saved_tensors
                return grad_output * 1.5 * (5 * input ** 2 - 1)
        return LegendrePolynomial3


def test_autograd_function_matches_torch_and_passes_gradcheck(torch):
    P3, TP3 = _Legendre3.make(cr), _Legendre3.make(torch)
    x = np.linspace(-1, 1, 7)
    c, t = cr.tensor(x, dtype=cr.float64, requires_grad=True), torch.tensor(x, requires_grad=True)
    yc, yt = P3.apply(c), TP3.apply(t)
    _eq(yc, yt, rtol=1e-12)
    yc.sum().backward()
    yt.sum().backward()
    _eq(c.grad, t.grad, rtol=1e-12)
    assert cr.gradcheck(lambda z: P3.apply(z), [cr.tensor(x, dtype=cr.float64)])
    assert cr.gradgradcheck(lambda z: P3.apply(z), [cr.tensor(x, dtype=cr.float64)])

    class Scale(cr.autograd.Function):
        @staticmethod
        def forward(ctx, x, k):
            ctx.k = k
            assert ctx.needs_input_grad == (True, False)
            return x * k

        @staticmethod
        def backward(ctx, g):
            return g * ctx.k, None
    z = cr.tensor([1.0, 2.0], requires_grad=True)
    Scale.apply(z, 3.0).sum().backward()
    _eq(z.grad, [3.0, 3.0])


def test_linear_keeps_the_dtype_it_is_given(torch):
    m = nn.Linear(4, 3, dtype=cr.float64)
    assert m.weight.dtype == cr.float64 and m.bias.dtype == cr.float64
    assert torch.nn.Linear(4, 3, dtype=torch.float64).weight.dtype == torch.float64


def test_out_of_range_size_dim_and_bad_positional_count():
    c = cr.zeros(2, 3)
    with pytest.raises(IndexError, match="out of range"):
        c.size(5)
    with pytest.raises(TypeError, match="positional"):
        cr.sum(c, 0, False, 1)
