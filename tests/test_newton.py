"""Newton's method: exact on quadratics, quadratic convergence on logistic regression (same
optimum as scikit-learn), Newton-CG, damping, line search, errors and the cost warning."""

import warnings

import numpy as np
import pytest

import chainrule as cr
from chainrule import functional as F
from chainrule.optim import Newton


def _t(x, grad=True):
    return cr.tensor(np.asarray(x, dtype=np.float64), dtype=np.float64, requires_grad=grad)


def _quadratic():
    """f(x, Y) = 1/2 theta^T A theta - b^T theta over theta = (x (3,), Y (2, 2)) coupled by A."""
    rng = np.random.default_rng(0)
    M = rng.standard_normal((7, 7))
    A, b = M @ M.T + 0.5 * np.eye(7), rng.standard_normal(7)
    x, Y = _t(rng.standard_normal(3)), _t(rng.standard_normal((2, 2)))
    At, bt = cr.tensor(A, dtype=np.float64), cr.tensor(b, dtype=np.float64)

    def f():
        th = cr.cat([x, Y.reshape(4)])
        return 0.5 * (th * (At @ th)).sum() - (bt * th).sum()

    return f, (x, Y), np.linalg.solve(A, b)


@pytest.mark.parametrize("exact_max_params", [2000, 0], ids=["exact", "newton-cg"])
def test_one_step_solves_a_quadratic(exact_max_params):
    f, (x, Y), opt_theta = _quadratic()
    opt = Newton([x, Y], exact_max_params=exact_max_params)
    opt.step(f)
    np.testing.assert_allclose(np.concatenate([x._data, Y._data.reshape(-1)]), opt_theta, rtol=1e-9, atol=1e-10)
    assert opt.state[x]["cg_iters"] == (0 if exact_max_params else pytest.approx(7, abs=1))


def _logistic(n=200, dim=5, lam=0.05, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, dim))
    y = (X @ rng.standard_normal(dim) + 0.5 * rng.standard_normal(n) > 0.3).astype(np.float64)
    w, b = _t(np.zeros(dim)), _t(0.0)
    Xt, yt = cr.tensor(X, dtype=np.float64), cr.tensor(y, dtype=np.float64)

    def loss():  # the MEAN logistic loss + lam/2 ||w||^2 (the intercept is not penalised)
        return F.binary_cross_entropy_with_logits(Xt @ w + b, yt) + lam / 2 * (w * w).sum()

    return X, y, w, b, loss


def test_logistic_regression_converges_quadratically_to_sklearns_optimum():
    """sklearn minimises C sum_i l_i + 1/2 ||w||^2; dividing by C n gives mean_i l_i +
    1/(2 C n) ||w||^2, so lam = 1 / (C n), i.e. C = 1 / (n lam)."""
    from sklearn.linear_model import LogisticRegression

    n, lam = 200, 0.05
    X, y, w, b, loss = _logistic(n=n, lam=lam)
    opt = Newton([w, b])
    losses = [float(opt.step(loss)._data) for _ in range(8)]
    clf = LogisticRegression(C=1.0 / (n * lam), solver="newton-cg", tol=1e-12, max_iter=1000).fit(X, y)
    np.testing.assert_allclose(w._data, clf.coef_[0], rtol=1e-6, atol=1e-8)
    np.testing.assert_allclose(b._data, clf.intercept_[0], rtol=1e-6, atol=1e-8)
    f_star = float(loss()._data)
    gaps = [f - f_star for f in losses]
    near = [(a, c) for a, c in zip(gaps, gaps[1:]) if 1e-14 < a < 0.05 and c > 1e-15]
    assert len(near) >= 3
    for a, c in near:  # the gap roughly squares per step
        assert c <= 5 * a * a, (a, c)
    # and the correspondence really is lam = 1 / (C n): a different C gives a different optimum
    off = LogisticRegression(C=1.0 / lam, solver="newton-cg", tol=1e-12).fit(X, y)
    assert np.abs(off.coef_[0] - w._data).max() > 1e-2


def test_newton_cg_reaches_the_same_optimum_as_exact():
    *_, w1, b1, loss1 = _logistic()
    *_, w2, b2, loss2 = _logistic()
    o1, o2 = Newton([w1, b1]), Newton([w2, b2], exact_max_params=0, max_cg_iter=50)
    for _ in range(8):
        o1.step(loss1), o2.step(loss2)
    np.testing.assert_allclose(w2._data, w1._data, rtol=1e-8, atol=1e-10)
    np.testing.assert_allclose(b2._data, b1._data, rtol=1e-8, atol=1e-10)
    assert "Hessian-free" in o2.describe() and "exact, P = 6" in o1.describe()


def test_gradient_is_left_in_grad_and_loss_returned():
    X, y, w, b, loss = _logistic()
    opt = Newton([w, b])
    out = opt.step(loss)
    assert float(out._data) == pytest.approx(np.log(2))  # the loss at the starting point w = 0, b = 0
    np.testing.assert_allclose(w.grad._data, X.T @ (0.5 - y) / len(y), rtol=1e-10)  # its gradient there
    np.testing.assert_allclose(b.grad._data, np.mean(0.5 - y), rtol=1e-10)


def test_damping_makes_a_nonconvex_step_descend():
    """f = x^4/4 - x^2/2 at x = 0.3 has f'' < 0: the plain Newton step heads for the maximum at 0
    and the loss goes up; H + damping I with damping = 2 descends."""
    def run(damping):
        x = _t([0.3])
        f = lambda: (x ** 4 / 4 - x ** 2 / 2).sum()
        f0 = float(f()._data)
        Newton([x], damping=damping).step(f)
        return float(f()._data) - f0, float(x._data[0])

    up, x_plain = run(0.0)
    down, x_damped = run(2.0)
    assert up > 0 and abs(x_plain) < 0.1
    assert down < 0 and x_damped > 0.3


def test_line_search_rescues_a_diverging_newton_iteration():
    """f = sqrt(1 + x^2): the Newton step maps x to -x^3, which diverges from |x| > 1."""
    def run(line_search):
        x = _t([1.5])
        opt = Newton([x], line_search=line_search)
        for _ in range(8):
            opt.step(lambda: ((1 + x * x) ** 0.5).sum())
        return abs(float(x._data[0]))

    assert run(False) > 1e6
    assert run(True) < 1e-8


def test_float32_parameters_stay_float32():
    x = cr.tensor([1.0, -2.0], requires_grad=True)
    Newton([x]).step(lambda: ((x - 3.0) ** 2).sum())
    assert x._data.dtype == np.float32
    np.testing.assert_allclose(x._data, [3.0, 3.0], rtol=1e-6)


def test_errors_and_cost_warning():
    x = _t([1.0, 2.0])
    with pytest.raises(ValueError, match="needs a closure that re-evaluates the model and returns the loss"):
        Newton([x]).step()
    with pytest.raises(ValueError, match="does not depend on the parameters"):
        Newton([x]).step(lambda: cr.tensor(1.0))
    with pytest.raises(ValueError, match="damping must be >= 0, got -1"):
        Newton([x], damping=-1)
    with pytest.raises(ValueError, match="same hyperparameters"):
        Newton([{"params": [x]}, {"params": [_t([1.0])], "damping": 1.0}])
    big = cr.zeros(2500, requires_grad=True)
    with pytest.warns(UserWarning, match=r"P\^2 = 6.25 million floats \(47.68 MiB in float64\).*15.6 billion flops"):
        Newton([big], exact_max_params=10_000)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        Newton([big])  # default: Newton-CG above 2,000 parameters, no warning


def test_pytorch_style_closure_that_calls_backward_works_in_the_line_search():
    """Issue 17: the line search ran the closure under no_grad, so a closure calling backward() crashed."""
    rng = np.random.default_rng(0)
    X = rng.standard_normal((30, 3)).astype(np.float64)
    y = (X[:, 0] - X[:, 1] > 0).astype(np.int64)
    runs = []
    for style in ("returns", "backward"):
        cr.manual_seed(0)
        m = cr.models.SoftmaxRegression(3, 2).to(np.float64)
        opt = cr.optim.Newton(m.parameters(), lr=1.0, line_search=True)

        def closure():
            loss = cr.functional.cross_entropy(m(X), y)
            if style == "backward":
                opt.zero_grad()
                loss.backward(retain_graph=True)
            return loss
        losses = [float(opt.step(closure)._data) for _ in range(4)]
        runs.append((losses, [p.numpy().copy() for p in m.parameters()], [p.grad.numpy().copy() for p in m.parameters()]))
    np.testing.assert_allclose(runs[0][0], runs[1][0], rtol=1e-12)
    assert runs[0][0][-1] < runs[0][0][0]
    for a, b in zip(runs[0][1] + runs[0][2], runs[1][1] + runs[1][2]):  # same steps, same gradient left in .grad
        np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-12)


def test_closure_that_frees_the_graph_gets_a_clear_error():
    m = cr.models.SoftmaxRegression(2, 2)
    opt = cr.optim.Newton(m.parameters())
    X, y = np.ones((4, 2), np.float32), np.array([0, 1, 0, 1])

    def closure():
        opt.zero_grad()
        loss = cr.functional.cross_entropy(m(X), y)
        loss.backward()
        return loss
    with pytest.raises(ValueError, match=r"closure called backward\(\), which freed the graph"):
        opt.step(closure)
