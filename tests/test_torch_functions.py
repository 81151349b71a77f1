"""torch functions and Tensor methods beyond issue 15's list that tutorial code uses (found by porting fresh
scripts): indexing (gather, scatter, masked_fill, chunk, split, flip, roll, tril), sorting (sort, topk),
cumsum, comparisons, activations, losses, nn.utils clipping, init, inference_mode, testing.assert_close.
Each against torch 2.13: values, and gradients where the function has one; gradcheck in float64."""

import numpy as np
import pytest

import chainrule as cr
import chainrule.nn as nn

A = (np.arange(24).reshape(2, 3, 4) * 0.37 % 1.9 - 0.8)
IDX = np.array([[0, 2, 1, 1], [2, 0, 0, 1]])


def _same(fn, torch, *arrays, dtype=np.float32, grad=True, rtol=1e-6):
    """fn(lib, *tensors) on both libraries: equal values and equal gradients of a weighted sum of the output."""
    cs = [cr.tensor(a, dtype=dtype, requires_grad=grad) for a in arrays]
    ts = [torch.tensor(a.astype(dtype), requires_grad=grad) for a in arrays]
    c, t = fn(cr, *cs), fn(torch, *ts)
    if isinstance(c, tuple):
        c, t = c[0], t[0]
    np.testing.assert_allclose(c.numpy(), t.detach().numpy(), rtol=rtol, atol=1e-7)
    assert c.shape == tuple(t.shape)
    if grad:
        w = np.cos(np.arange(t.numel())).reshape(tuple(t.shape))
        (c * cr.tensor(w, dtype=dtype)).sum().backward()
        (t * torch.tensor(w.astype(dtype))).sum().backward()
        for x, y in zip(cs, ts):
            np.testing.assert_allclose(x.grad.numpy(), y.grad.numpy(), rtol=rtol, atol=1e-6)


def _idx(lib, a=IDX):
    return lib.tensor(a)


DIFFERENTIABLE = {
    "gather": lambda lib, x: lib.gather(x[0], 1, _idx(lib, IDX[:, :3]).T[:, :2].contiguous()),
    "gather_method": lambda lib, x: x.gather(2, _idx(lib, np.tile(IDX[:, None, :2], (1, 3, 1)))),
    "scatter": lambda lib, x: lib.scatter(x[0], 0, _idx(lib, IDX[:, :3] % 3), x[1, :2, :3]),
    "scatter_value": lambda lib, x: x[0].scatter(1, _idx(lib, IDX[:, :3]), 2.5),
    "scatter_add": lambda lib, x: x[0].scatter_add(0, _idx(lib, IDX[:, :3] % 3), x[1, :2, :3] * 2),
    "index_select": lambda lib, x: lib.index_select(x, 1, _idx(lib, np.array([2, 0, 2]))),
    "masked_fill": lambda lib, x: x.masked_fill(x > 0.3, -1.0),
    "masked_select": lambda lib, x: lib.masked_select(x, x < 0),
    "where_method": lambda lib, x: x.where(x > 0, x * 3),
    "flip": lambda lib, x: lib.flip(x, dims=[0, 2]),
    "roll": lambda lib, x: lib.roll(x, shifts=(1, -2), dims=(1, 2)),
    "roll_flat": lambda lib, x: x.roll(5),
    "chunk": lambda lib, x: lib.cat(lib.chunk(x, 3, dim=2)[::-1], dim=2),
    "split_size": lambda lib, x: lib.cat(x.split(3, dim=2)[::-1], dim=2),
    "split_sections": lambda lib, x: lib.split(x, [1, 2], dim=1)[1] * 2,
    "tril": lambda lib, x: lib.tril(x, diagonal=1),
    "triu": lambda lib, x: x.triu(-1),
    "sort": lambda lib, x: lib.sort(x, dim=1, descending=True).values,
    "sort_method": lambda lib, x: x.sort(-1)[0],
    "topk": lambda lib, x: lib.topk(x, 2, dim=-1).values,
    "topk_smallest": lambda lib, x: x.topk(2, dim=1, largest=False)[0],
    "cumsum": lambda lib, x: lib.cumsum(x, dim=1),
    "cumsum_method": lambda lib, x: x.cumsum(-1),
    "bmm": lambda lib, x: lib.bmm(x, x.transpose(1, 2)),
    "outer": lambda lib, x: lib.outer(x[0, 0], x[1, 1]),
    "square_rsqrt_reciprocal": lambda lib, x: x.square() + (x.abs() + 1).rsqrt() + (x + 3).reciprocal(),
    "diag_of_matrix": lambda lib, x: lib.diag(x[0], 1),
    "diag_of_vector": lambda lib, x: lib.diag(x[0, 0], -1),
    "silu_mish": lambda lib, x: lib.nn.functional.silu(x) + lib.nn.functional.mish(x),
    "elu_celu_selu": lambda lib, x: (lib.nn.functional.elu(x, 0.7) + lib.nn.functional.celu(x, 0.5)
                                     + lib.nn.functional.selu(x)),
    "hard": lambda lib, x: (lib.nn.functional.hardtanh(x * 2, -0.5, 0.6) + lib.nn.functional.relu6(x * 9)
                            + lib.nn.functional.hardswish(x * 4) + lib.nn.functional.hardsigmoid(x * 4)),
    "logsigmoid_softsign": lambda lib, x: lib.nn.functional.logsigmoid(x * 30) + lib.nn.functional.softsign(x),
    "softplus_beta": lambda lib, x: lib.nn.functional.softplus(x * 10, beta=2.0, threshold=5.0),
    "softmin": lambda lib, x: lib.nn.functional.softmin(x, dim=1),
    "normalize": lambda lib, x: lib.nn.functional.normalize(x, dim=2),
    "cosine_similarity": lambda lib, x: lib.nn.functional.cosine_similarity(x[0], x[1], dim=1),
    "pairwise_distance": lambda lib, x: lib.nn.functional.pairwise_distance(x[0], x[1]),
    "glu_threshold": lambda lib, x: lib.nn.functional.glu(x, -1) + lib.nn.functional.threshold(x, 0.1, -2.0)[..., :2],
    "kl_div": lambda lib, x: lib.nn.functional.kl_div(lib.log_softmax(x, -1), lib.softmax(x * 2, -1),
                                                      reduction="batchmean"),
    "kl_div_log_target": lambda lib, x: lib.nn.functional.kl_div(x, x * 0.5, reduction="sum", log_target=True),
    "linalg_norm": lambda lib, x: lib.linalg.norm(x, dim=-1) + lib.linalg.vector_norm(x, ord=float("inf"), dim=-1),
    "linalg_fro": lambda lib, x: lib.linalg.norm(x[0]) + lib.linalg.norm(x[1], ord="fro"),
    "einsum_matmul": lambda lib, x: lib.einsum("bij,bkj->bik", x, x * 2),
    "einsum_sum_away": lambda lib, x: lib.einsum("bij,jk->bk", x, x[0].T.contiguous()),
    "einsum_implicit": lambda lib, x: lib.einsum("ij,kj", [x[0], x[1]]),
    "pad_flat": lambda lib, x: lib.nn.functional.pad(x, (1, 2, 0, 1)),
    "pad_mode_value": lambda lib, x: lib.nn.functional.pad(x, (2, 0), "constant", 0.5),
}


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("name", sorted(DIFFERENTIABLE))
def test_function_and_gradient_equal_torch(torch, name, dtype):
    _same(DIFFERENTIABLE[name], torch, A, dtype=dtype, rtol=1e-5 if dtype == np.float32 else 1e-10)


@pytest.mark.parametrize("name", ["gather", "scatter", "cumsum", "sort", "roll", "diag_of_vector", "elu_celu_selu",
                                  "normalize", "kl_div", "einsum_matmul", "einsum_sum_away", "einsum_implicit"])
def test_gradcheck(name):
    fn = DIFFERENTIABLE[name]
    assert cr.gradcheck(lambda x: fn(cr, x), [cr.tensor(A, dtype=cr.float64)])
    assert cr.gradgradcheck(lambda x: fn(cr, x), [cr.tensor(A, dtype=cr.float64)])


def test_in_place_indexing_methods_equal_torch(torch):
    def run(lib):
        z = lib.zeros(3, 4)
        z.scatter_(1, lib.tensor([[0, 1], [2, 0], [1, 1]]), 1.0)  # the one-hot idiom; a repeated target
        z.scatter_add_(0, lib.tensor([[0, 1, 2, 0]]), lib.ones(1, 4) * 3)
        z.masked_fill_(z > 3.5, -1.0)
        y = lib.zeros(2, 5).scatter_(1, lib.tensor([[4], [1]]), lib.tensor([[7.0], [8.0]]), reduce="add")
        return z, y
    for c, t in zip(run(cr), run(torch)):
        np.testing.assert_array_equal(c.numpy(), t.numpy())
    w = cr.zeros(3, requires_grad=True)
    with pytest.raises(RuntimeError, match="leaf"):
        w.masked_fill_(w > 0, 1.0)


def test_comparisons_and_integer_results_equal_torch(torch):
    x, tx = cr.tensor(A.astype(np.float32)), torch.tensor(A.astype(np.float32))
    assert cr.allclose(x, x + 1e-7) == torch.allclose(tx, tx + 1e-7) is True
    assert cr.allclose(x, x + 1e-3) == torch.allclose(tx, tx + 1e-3) is False
    assert cr.equal(x, x.clone()) and not cr.equal(x, x[0]) and torch.equal(tx, tx.clone())
    for c, t in [(cr.isclose(x, x * 1.00001), torch.isclose(tx, tx * 1.00001)),
                 (x.topk(3, dim=2).indices, tx.topk(3, dim=2).indices),
                 (cr.sort(x, 0, descending=True).indices, torch.sort(tx, 0, descending=True).indices),
                 (x.argsort(dim=1), tx.argsort(dim=1)),
                 (cr.nonzero(x > 0.5), torch.nonzero(tx > 0.5)),
                 (cr.unique(cr.tensor([3, 1, 1, 2])), torch.unique(torch.tensor([3, 1, 1, 2]))),
                 (cr.cumsum(cr.tensor([1, 2, 3]), 0), torch.cumsum(torch.tensor([1, 2, 3]), 0)),
                 (cr.isnan(cr.tensor([1.0, np.nan])), torch.isnan(torch.tensor([1.0, np.nan]))),
                 (cr.isinf(cr.tensor([1.0, np.inf])), torch.isinf(torch.tensor([1.0, np.inf]))),
                 (cr.isfinite(cr.tensor([np.inf, 1.0])), torch.isfinite(torch.tensor([np.inf, 1.0]))),
                 (x.new_zeros(2, 3), tx.new_zeros(2, 3)), (x.new_ones((2,)), tx.new_ones((2,))),
                 (x.new_full((2,), 4.0), tx.new_full((2,), 4.0)), (x.new_tensor([1, 2]), tx.new_tensor([1, 2])),
                 (x.unflatten(2, (2, 2)), tx.unflatten(2, (2, 2))), (x.clamp_max(0.1), tx.clamp_max(0.1)),
                 (x.ceil(), tx.ceil()), (x.fmod(0.3), tx.fmod(0.3)), (x.remainder(0.3), tx.remainder(0.3))]:
        np.testing.assert_allclose(c.numpy(), t.numpy(), rtol=1e-6, atol=1e-7)
        assert c.shape == tuple(t.shape) and str(c.dtype) == str(t.dtype).removeprefix("torch.")
    assert x.nelement() == tx.nelement() and x.is_floating_point() and not cr.tensor([1]).is_floating_point()
    u, inv, cnt = cr.unique(cr.tensor([3, 1, 1, 2]), return_inverse=True, return_counts=True)
    tu, tinv, tcnt = torch.unique(torch.tensor([3, 1, 1, 2]), return_inverse=True, return_counts=True)
    assert inv.tolist() == tinv.tolist() and cnt.tolist() == tcnt.tolist()


def test_errors_name_the_function_and_the_shapes():
    x = cr.zeros(2, 3)
    with pytest.raises(ValueError, match=r"gather: index must be an integer tensor .* \(2, 3\)"):
        cr.gather(x, 1, cr.zeros(2, 3))
    with pytest.raises(ValueError, match="larger than input"):
        cr.gather(x, 1, cr.zeros(3, 1, dtype=cr.int64))
    with pytest.raises(ValueError, match=r"split: sizes \[1, 1\] sum to 2"):
        cr.split(x, [1, 1], dim=1)
    with pytest.raises(ValueError, match="topk: k=4"):
        x.topk(4)
    with pytest.raises(ValueError, match=r"bmm: expected .* \(2, 3\)"):
        cr.bmm(x, x)
    with pytest.raises(ValueError, match="cumsum: dim 2 is out of range"):
        cr.cumsum(x, 2)


MODULES = [("SiLU", (), {}), ("Mish", (), {}), ("LogSigmoid", (), {}), ("ELU", (0.5,), {}), ("CELU", (), {"alpha": 2.0}),
           ("SELU", (), {}), ("Hardtanh", (-0.2, 0.4), {}), ("ReLU6", (), {}), ("Hardsigmoid", (), {}),
           ("Hardswish", (), {}), ("Softsign", (), {}), ("Softplus", (), {"beta": 3.0}), ("Softmin", (), {"dim": 1}),
           ("Threshold", (0.1, 20.0), {}), ("GLU", (), {}), ("PReLU", (), {}), ("PReLU", (3,), {"init": 0.1})]


@pytest.mark.parametrize("name,args,kw", MODULES, ids=[f"{m[0]}{m[1]}" for m in MODULES])
def test_activation_modules_equal_torch(torch, name, args, kw):
    def fn(lib, x):
        m = getattr(lib.nn, name)(*args, **kw)
        return m(x * 4)
    _same(fn, torch, A)
    assert repr(getattr(nn, name)(*args, **kw)).startswith(name)


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_loss_modules_equal_torch(torch, reduction):
    B = np.abs(np.sin(A * 5))

    def fn(lib, x, y):
        return (lib.nn.SmoothL1Loss(reduction=reduction, beta=0.3)(x, y) * 2
                + lib.nn.KLDivLoss(reduction=reduction)(lib.log_softmax(x, -1), lib.softmax(y, -1)))
    _same(fn, torch, A, B)
    _same(lambda lib, x, y: lib.nn.CosineSimilarity(dim=2)(x, y) + lib.nn.PairwiseDistance(p=1.0)(x, y), torch, A, B)


@pytest.mark.parametrize("max_norm,norm_type", [(0.5, 2.0), (100.0, 2.0), (0.2, 1.0), (0.1, float("inf"))])
def test_clip_grad_norm_equals_torch(torch, max_norm, norm_type):
    def run(lib):
        lib.manual_seed(0)
        m = lib.nn.Linear(4, 3)
        with lib.no_grad():
            m.weight.copy_(lib.tensor(A[0, :, :].astype(np.float32)))
            m.bias.copy_(lib.tensor([0.1, -0.2, 0.3]))
        m(lib.tensor(A[1].astype(np.float32) * 3)).pow(2).sum().backward()
        total = lib.nn.utils.clip_grad_norm_(m.parameters(), max_norm=max_norm, norm_type=norm_type)
        return total, m.weight.grad, m.bias.grad
    for c, t in zip(run(cr), run(torch)):
        np.testing.assert_allclose(c.numpy(), t.numpy(), rtol=1e-5)


def test_clip_grad_value_and_vector_round_trip_equal_torch(torch):
    def run(lib):
        p = lib.nn.Parameter(lib.tensor(A[0].astype(np.float32)))
        q = lib.nn.Parameter(lib.tensor(A[1, 0].astype(np.float32)))
        (p.sum() * 3 + (q * q).sum()).backward()
        lib.nn.utils.clip_grad_value_([p, q], clip_value=1.0)
        vec = lib.nn.utils.parameters_to_vector([p, q])
        lib.nn.utils.vector_to_parameters(vec * 2, [p, q])
        return p.grad, q.grad, vec, p, q
    for c, t in zip(run(cr), run(torch)):
        np.testing.assert_allclose(c.numpy(), t.detach().numpy(), rtol=1e-6)


def test_init_functions_have_torchs_properties(torch):
    w = cr.zeros(5, 8)
    nn.init.orthogonal_(w, gain=2.0)
    np.testing.assert_allclose(w.numpy() @ w.numpy().T, 4 * np.eye(5), atol=1e-5)
    tall = nn.init.orthogonal_(cr.zeros(8, 3))
    np.testing.assert_allclose(tall.numpy().T @ tall.numpy(), np.eye(3), atol=1e-5)
    cr.manual_seed(0)
    t = nn.init.trunc_normal_(cr.zeros(20000), mean=0.5, std=1.0, a=-1.0, b=1.0)
    tt = torch.nn.init.trunc_normal_(torch.zeros(20000), mean=0.5, std=1.0, a=-1.0, b=1.0)
    assert t.numpy().min() >= -1 and t.numpy().max() <= 1 and t.dtype == cr.float32
    assert abs(t.mean().item() - tt.mean().item()) < 0.03 and abs(t.std().item() - tt.std().item()) < 0.03
    np.testing.assert_array_equal(nn.init.eye_(cr.zeros(3, 4)).numpy(), torch.nn.init.eye_(torch.zeros(3, 4)).numpy())
    with pytest.raises(ValueError, match="orthogonal_"):
        nn.init.orthogonal_(cr.zeros(3))


def test_inference_mode_is_no_grad_as_context_and_decorator(torch):
    x, tx = cr.ones(2, requires_grad=True), torch.ones(2, requires_grad=True)
    with cr.inference_mode():
        assert not (x * 2).requires_grad
    with cr.inference_mode(False):
        assert (x * 2).requires_grad
    with torch.inference_mode(False):
        assert (tx * 2).requires_grad

    @cr.inference_mode()
    def f():
        return (x * 2).requires_grad

    @cr.inference_mode
    def g():
        return (x * 2).requires_grad
    assert f() is False and g() is False and cr.is_grad_enabled()


def test_assert_close_uses_torchs_default_tolerances(torch):
    x, tx = cr.tensor([1.0, 2.0]), torch.tensor([1.0, 2.0])
    for eps, ok in [(1e-6, True), (1e-4, False)]:
        for lib, a in ((cr, x), (torch, tx)):
            if ok:
                lib.testing.assert_close(a + eps, a)
            else:
                with pytest.raises(AssertionError):
                    lib.testing.assert_close(a + eps, a)
    cr.testing.assert_close({"w": [x, x]}, {"w": [x.clone(), x]})
    cr.testing.assert_close(x + 1e-3, x, rtol=0.0, atol=2e-3)
    with pytest.raises(AssertionError, match="dtype"):
        cr.testing.assert_close(x, x.double())
    with pytest.raises(AssertionError, match="shape"):
        cr.testing.assert_close(x, x[:1])
    with pytest.raises(ValueError, match="both rtol and atol"):
        cr.testing.assert_close(x, x, rtol=1e-3)


def test_random_split_and_loaders_take_a_torch_style_generator(torch):
    from chainrule.utils.data import DataLoader, TensorDataset, random_split
    ds = TensorDataset(cr.arange(10))
    a = random_split(ds, [7, 3], generator=cr.Generator().manual_seed(0))
    b = random_split(ds, [7, 3], generator=cr.Generator().manual_seed(0))
    assert [len(s) for s in a] == [7, 3] and a[0].indices == b[0].indices
    order = [int(x) for (x,) in DataLoader(ds, shuffle=True, generator=cr.Generator().manual_seed(1))]
    assert sorted(order) == list(range(10))


def test_where_with_one_argument_is_nonzero_as_tuple(torch):
    m = A > 0.2
    for c, t in zip(cr.where(cr.tensor(m)), torch.where(torch.tensor(m))):
        assert c.tolist() == t.tolist() and c.dtype == cr.int64


def test_einsum_refuses_a_gradient_it_cannot_give():
    x = cr.tensor(np.eye(3), requires_grad=True)
    assert cr.einsum("ii->", x).item() == 3
    with pytest.raises(ValueError, match="no gradient for 'ii->'"):
        cr.einsum("ii->", x).backward()
    with pytest.raises(ValueError, match="names 2 operands, but 1"):
        cr.einsum("ij,jk->ik", x)


def test_sequential_children_are_attributes_as_in_torch(torch):
    from collections import OrderedDict
    for lib in (cr, torch):
        m = lib.nn.Sequential(OrderedDict([("fc1", lib.nn.Linear(3, 5)), ("act", lib.nn.ReLU())]))
        assert m.fc1 is m[0] and getattr(lib.nn.Sequential(lib.nn.Tanh()), "0") is not None
        assert lib.nn.ModuleDict({"a": lib.nn.ReLU()}).a is not None
        with pytest.raises(AttributeError, match="fc2"):
            m.fc2


def test_general_checkpoint_dict_saves_and_loads_as_in_torch(torch, tmp_path):
    def run(lib, path):
        lib.manual_seed(0)
        m = lib.nn.BatchNorm1d(3)
        opt = lib.optim.Adam(m.parameters(), lr=0.1)
        x, w = lib.tensor(A[0].T.astype(np.float32)), lib.tensor(A[1].T.astype(np.float32))
        (m(x) * w).sum().backward()
        opt.step()
        lib.save({"model": m.state_dict(), "optimizer": opt.state_dict(), "epoch": 3, "note": "x", "hist": [0.5, 1]},
                 path)
        ck = lib.load(path)
        m2 = lib.nn.BatchNorm1d(3)
        m2.load_state_dict(ck["model"])
        opt2 = lib.optim.Adam(m2.parameters(), lr=0.1)
        opt2.load_state_dict(ck["optimizer"])
        for mm, oo in ((m, opt), (m2, opt2)):
            oo.zero_grad()
            (mm(x) * w).sum().backward()
            oo.step()
        return ck, m, m2
    (ck, m, m2), (tck, _, tm2) = run(cr, tmp_path / "c.pt"), run(torch, tmp_path / "t.pt")
    assert ck["epoch"] == tck["epoch"] == 3 and ck["note"] == "x" and ck["hist"] == tck["hist"]
    assert ck["model"]["num_batches_tracked"].shape == tuple(tck["model"]["num_batches_tracked"].shape) == ()
    for k in ("weight", "bias", "running_var"):
        np.testing.assert_allclose(m2.state_dict()[k].numpy(), m.state_dict()[k].numpy(), rtol=1e-7)
        np.testing.assert_allclose(m2.state_dict()[k].numpy(), tm2.state_dict()[k].detach().numpy(), rtol=1e-5)


def test_bernoulli_and_multinomial_draw_what_torch_draws():
    cr.manual_seed(0)
    p = cr.tensor([0.0, 1.0, 0.3])
    draws = np.stack([cr.bernoulli(p).numpy() for _ in range(4000)])
    assert draws.dtype == np.float32 and set(np.unique(draws)) <= {0.0, 1.0}
    np.testing.assert_allclose(draws.mean(0), [0.0, 1.0, 0.3], atol=0.03)
    assert cr.zeros(1000).bernoulli_(0.25).mean().item() == pytest.approx(0.25, abs=0.05)
    s = cr.multinomial(cr.tensor([[0.0, 1.0, 3.0], [1.0, 0.0, 0.0]]), 2, replacement=True)
    assert s.dtype == cr.int64 and s.shape == (2, 2) and s[1].tolist() == [0, 0] and 0 not in s[0].tolist()
    assert sorted(cr.multinomial(cr.tensor([1.0, 1.0, 0.0]), 2).tolist()) == [0, 1]
    with pytest.raises(ValueError, match="without replacement"):
        cr.multinomial(cr.tensor([1.0, 0.0]), 2)
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        cr.bernoulli(cr.tensor([1.5]))


def test_threads_determinism_and_print_options(torch):
    before = cr.get_num_threads()
    cr.set_num_threads(1)
    assert cr.get_num_threads() == 1
    cr.set_num_threads(before)
    with pytest.raises(ValueError, match="positive integer"):
        cr.set_num_threads(0)
    cr.use_deterministic_algorithms(True)
    assert cr.are_deterministic_algorithms_enabled()
    try:
        cr.set_printoptions(precision=2)
        torch.set_printoptions(precision=2)
        assert repr(cr.tensor([1.23456, 2.5])) == "tensor([1.23, 2.5 ])" and "1.23" in repr(torch.tensor([1.23456]))
    finally:
        cr.set_printoptions(profile="default")
        torch.set_printoptions(profile="default")
    assert repr(cr.tensor([1.23456])) == "tensor([1.2346])" == repr(torch.tensor([1.23456]))


@pytest.mark.parametrize("name", ["exp_", "log1p_", "sqrt_", "abs_", "neg_", "sigmoid_", "tanh_", "relu_", "floor_",
                                  "ceil_", "round_", "sign_", "square_", "sin_", "cos_", "reciprocal_", "rsqrt_"])
def test_in_place_unary_methods_equal_torch(torch, name):
    base = np.abs(A) + 0.1 if name in ("sqrt_", "rsqrt_", "log1p_") else A
    c, t = cr.tensor(base, dtype=cr.float32), torch.tensor(base, dtype=torch.float32)
    assert getattr(c, name)() is c and getattr(t, name)() is t
    np.testing.assert_allclose(c.numpy(), t.numpy(), rtol=1e-6, atol=1e-7)
    c, t = cr.tensor(base), torch.tensor(base, dtype=torch.float32)
    np.testing.assert_allclose(c.clamp_min_(0.1).clamp_max_(0.5).numpy(), t.clamp_min_(0.1).clamp_max_(0.5).numpy())


def test_module_registration_and_lookup_equal_torch(torch):
    def build(lib):
        s = lib.nn.Sequential(lib.nn.Linear(2, 3))
        s.add_module("act", lib.nn.ReLU())
        s.add_module("out", lib.nn.Linear(3, 1))
        m = lib.nn.Module()
        m.add_module("body", s)
        m.register_parameter("scale", lib.nn.Parameter(lib.ones(1)))
        m.register_parameter("unused", None)
        return m
    m, tm = build(cr), build(torch)
    assert list(m.state_dict()) == list(tm.state_dict())
    assert type(m.get_submodule("body.out")).__name__ == type(tm.get_submodule("body.out")).__name__ == "Linear"
    assert m.get_parameter("body.0.bias").shape == tuple(tm.get_parameter("body.0.bias").shape) == (3,)
    assert m.body(cr.ones(4, 2)).shape == (4, 1) and len(m.body) == len(tm.body) == 3
    with pytest.raises(AttributeError, match="no submodule 'nope'"):
        m.get_submodule("body.nope")
    with pytest.raises(TypeError, match="must be a Parameter"):
        m.register_parameter("w", cr.ones(2))
    with pytest.raises(KeyError, match="without '.'"):
        m.add_module("a.b", cr.nn.ReLU())
