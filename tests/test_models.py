"""cr.models: the lecture's logistic regression, softmax regression, MLP and feature functions."""

import numpy as np
import pytest

import chainrule as cr
import chainrule.nn.functional as F
from chainrule.models import MLP, LogisticRegression, PolynomialFeatures, SoftmaxRegression

DTYPES = [np.float32, np.float64]
TOL = {np.float32: dict(rtol=1e-5, atol=1e-5), np.float64: dict(rtol=1e-10, atol=1e-12)}


def _gd(model, loss_fn, x, y, lr=0.5, steps=300):
    """Plain full-batch gradient descent (no optimizer dependency); returns the loss history."""
    hist = []
    for _ in range(steps):
        loss = loss_fn(model(x), y)
        model.zero_grad()
        loss.backward()
        with cr.no_grad():
            for p in model.parameters():
                p -= lr * p.grad
        hist.append(loss.item())
    return hist


XOR_X = np.array([[0, 0], [0, 1], [1, 0], [1, 1]], dtype=np.float32) * 2 - 1
XOR_Y = np.array([0, 1, 1, 0])


# ----- MLP against torch -------------------------------------------------------------------------------
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("activation", ["relu", "sigmoid", "tanh", "leaky_relu", "gelu"])
def test_mlp_matches_torch_sequential(torch, activation, dtype):
    cr.manual_seed(0)
    ours = MLP([5, 7, 6, 3], activation=activation, dropout=0.3).to(dtype).eval()
    theirs = ours.torch_equivalent().to(torch.float32 if dtype == np.float32 else torch.float64).eval()
    theirs.load_state_dict({k: torch.from_numpy(np.array(v)) for k, v in ours.to_torch_state_dict().items()})
    x = np.random.default_rng(1).standard_normal((8, 5)).astype(dtype)
    y = np.random.default_rng(2).integers(0, 3, 8)
    lc = F.cross_entropy(ours(cr.tensor(x, dtype=dtype)), cr.tensor(y))
    lt = torch.nn.functional.cross_entropy(theirs(torch.from_numpy(x)), torch.from_numpy(y))
    np.testing.assert_allclose(lc.item(), lt.item(), **TOL[dtype])
    lc.backward()
    lt.backward()
    tp = dict(theirs.named_parameters())
    for n, p in ours.named_parameters():
        assert p.grad.dtype == dtype
        np.testing.assert_allclose(p.grad._data, tp[n.removeprefix("layers.")].grad.numpy(), **TOL[dtype], err_msg=n)


def test_mlp_structure_and_names():
    m = MLP([4, 8, 8, 2], dropout=0.5)
    assert [type(layer).__name__ for layer in m.layers] == ["Linear", "ReLU", "Dropout", "Linear", "ReLU", "Dropout", "Linear"]
    assert list(m.state_dict()) == ["layers.0.weight", "layers.0.bias", "layers.3.weight", "layers.3.bias",
                                    "layers.6.weight", "layers.6.bias"]
    assert m.num_parameters() == 4 * 8 + 8 + 8 * 8 + 8 + 8 * 2 + 2
    assert all(p.dtype == np.float32 for p in m.parameters())
    assert [n for n, _ in MLP([3, 2]).named_parameters()] == ["layers.0.weight", "layers.0.bias"]


def test_mlp_torch_mapping_keys(torch):
    m = MLP([4, 8, 8, 2], activation="tanh", dropout=0.1)
    assert list(m.to_torch_state_dict()) == list(m.torch_equivalent().state_dict())


@pytest.mark.parametrize("kw,match", [
    (dict(sizes=[4]), "at least"),
    (dict(sizes=[4, 2], activation="swish"), "unknown activation 'swish'"),
    (dict(sizes=[4, 2], dropout=1.0), r"dropout must be in \[0, 1\)"),
    (dict(sizes=[4, 0, 2]), "positive integer"),
])
def test_mlp_validation(kw, match):
    with pytest.raises(ValueError, match=match):
        MLP(**kw)


def test_mlp_activation_as_module_class():
    m = MLP([2, 3, 1], activation=cr.nn.Tanh)
    assert isinstance(m.layers[1], cr.nn.Tanh) and m.config() is None  # not serialisable by name


def test_predict_helpers_use_eval_mode_and_no_graph():
    cr.manual_seed(0)
    m = MLP([4, 16, 3], dropout=0.5)
    x = np.random.default_rng(0).standard_normal((10, 4))  # float64 ndarray: cast to the model's float32
    p1, p2 = m.predict_proba(x), m.predict_proba(x)
    np.testing.assert_array_equal(p1, p2)  # dropout is off while predicting
    assert m.training  # and the mode is restored
    assert isinstance(p1, np.ndarray) and p1.dtype == np.float32
    np.testing.assert_allclose(p1.sum(1), 1, rtol=1e-6)
    np.testing.assert_array_equal(m.predict(x), p1.argmax(1))
    with cr.no_grad():
        z = m.eval()(cr.tensor(x))
    np.testing.assert_allclose(p1, F.softmax(z, -1)._data, rtol=1e-6)
    assert m.predict(x).dtype == np.int64


def test_binary_mlp_predicts_with_sigmoid():
    cr.manual_seed(0)
    m = MLP([2, 4, 1])
    z = m(XOR_X)._data[:, 0]
    np.testing.assert_allclose(m.predict_proba(XOR_X), 1 / (1 + np.exp(-z)), rtol=1e-6)
    np.testing.assert_array_equal(m.predict(XOR_X), (z >= 0).astype(int))


def test_mlp_learns_xor():
    # the lecture's point: a hidden layer with a nonlinearity expresses what a linear model cannot
    cr.manual_seed(0)
    m = MLP([2, 8, 2], activation="tanh")
    hist = _gd(m, F.cross_entropy, XOR_X, XOR_Y, lr=0.5, steps=300)
    assert hist[-1] < 0.1 * hist[0]
    np.testing.assert_array_equal(m.predict(XOR_X), XOR_Y)


# ----- logistic / softmax regression -------------------------------------------------------------------
def test_logistic_regression_is_the_lectures_model(torch):
    cr.manual_seed(0)
    m = LogisticRegression(3)
    x = np.random.default_rng(0).standard_normal((6, 3)).astype(np.float32)
    w, b = m.linear.weight._data[0], m.linear.bias._data[0]
    z = x @ w + b
    assert m(x).shape == (6,)
    np.testing.assert_allclose(m(x)._data, z, rtol=1e-5)
    np.testing.assert_allclose(m.predict_proba(x), 1 / (1 + np.exp(-z)), rtol=1e-5)
    np.testing.assert_array_equal(m.predict(x), (z >= 0).astype(int))
    # gradient of the logistic loss equals torch's on the twin
    y = np.array([0, 1, 1, 0, 1, 0], np.float32)
    F.binary_cross_entropy_with_logits(m(x), y).backward()
    tw = torch.tensor(m.linear.weight._data, requires_grad=True)
    tb = torch.tensor(m.linear.bias._data, requires_grad=True)
    torch.nn.functional.binary_cross_entropy_with_logits(
        (torch.from_numpy(x) @ tw.T + tb)[:, 0], torch.from_numpy(y)).backward()
    np.testing.assert_allclose(m.linear.weight.grad._data, tw.grad.numpy(), rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(m.linear.bias.grad._data, tb.grad.numpy(), rtol=1e-5, atol=1e-7)


def test_logistic_regression_with_polynomial_features_solves_xor():
    # XOR is not linearly separable in x, but it is in phi(x) = (1, a, b, a^2, ab, b^2)
    cr.manual_seed(0)
    phi = PolynomialFeatures(2)
    m = LogisticRegression(phi.n_output_features(2), feature_fn=phi)
    _gd(m, F.binary_cross_entropy_with_logits, XOR_X, XOR_Y.astype(np.float32), lr=1.0, steps=200)
    np.testing.assert_array_equal(m.predict(XOR_X), XOR_Y)
    plain = LogisticRegression(2)
    _gd(plain, F.binary_cross_entropy_with_logits, XOR_X, XOR_Y.astype(np.float32), lr=1.0, steps=200)
    assert (plain.predict(XOR_X) == XOR_Y).mean() < 1.0


def test_softmax_regression():
    cr.manual_seed(0)
    m = SoftmaxRegression(4, 3)
    rng = np.random.default_rng(0)
    centers = np.array([[3, 0, 0, 0], [0, 3, 0, 0], [0, 0, 3, 0]], np.float32)
    y = rng.integers(0, 3, 90)
    x = (centers[y] + rng.standard_normal((90, 4))).astype(np.float32)
    p = m.predict_proba(x)
    np.testing.assert_allclose(p.sum(1), 1, rtol=1e-6)
    np.testing.assert_array_equal(m.predict(x), p.argmax(1))
    hist = _gd(m, F.cross_entropy, x, y, lr=0.5, steps=100)
    assert hist[-1] < 0.5 * hist[0]
    assert (m.predict(x) == y).mean() > 0.9
    with pytest.raises(ValueError, match="n_classes must be an integer >= 2"):
        SoftmaxRegression(4, 1)


# ----- feature functions -------------------------------------------------------------------------------
@pytest.mark.parametrize("degree,interaction_only,include_bias", [
    (0, False, True), (1, False, True), (2, False, True), (3, False, False), (3, True, True), (2, True, False),
])
def test_polynomial_features_match_sklearn(degree, interaction_only, include_bias):
    from sklearn.preprocessing import PolynomialFeatures as SK

    x = np.random.default_rng(0).standard_normal((5, 3))
    ours = PolynomialFeatures(degree, interaction_only=interaction_only, include_bias=include_bias)
    sk = SK(degree, interaction_only=interaction_only, include_bias=include_bias)
    expect = sk.fit_transform(x)
    np.testing.assert_allclose(ours(x), expect, rtol=1e-12)
    got = ours(cr.tensor(x, dtype=np.float64))
    assert isinstance(got, cr.Tensor)
    np.testing.assert_allclose(got._data, expect, rtol=1e-12)
    assert ours.n_output_features(3) == sk.n_output_features_


def test_polynomial_features_are_differentiable():
    phi = PolynomialFeatures(3)
    x = cr.tensor(np.random.default_rng(0).standard_normal((4, 2)), dtype=np.float64, requires_grad=True)
    assert cr.gradcheck(lambda t: phi(t), (x,))
    # by hand for degree 2 on (a, b): sum phi = 1 + a + b + a^2 + ab + b^2 -> d/da = 1 + 2a + b
    x.grad = None
    PolynomialFeatures(2)(x).sum().backward()
    a, b = x._data[:, 0], x._data[:, 1]
    np.testing.assert_allclose(x.grad._data[:, 0], 1 + 2 * a + b, rtol=1e-12)
    assert PolynomialFeatures(2)(cr.tensor(np.ones((2, 2)))).dtype == np.float32


def test_polynomial_features_validation():
    with pytest.raises(ValueError, match="degree must be an integer >= 0"):
        PolynomialFeatures(-1)
    with pytest.raises(ValueError, match=r"must be \(N, n_features\)"):
        PolynomialFeatures(2)(np.ones(3))


def test_custom_feature_fn_is_applied_and_not_serialised():
    phi = lambda x: x * 2  # noqa: E731 - any callable is a feature function
    m = SoftmaxRegression(2, 3, feature_fn=phi)
    x = np.ones((1, 2), np.float32)
    np.testing.assert_allclose(m(x)._data, m.linear(2 * x)._data)
    assert m.config() is None


def test_config_round_trip():
    m = MLP([3, 4, 2], activation="tanh", dropout=0.25, feature_fn=PolynomialFeatures(1))
    assert m.config() == {"class": "MLP", "sizes": [3, 4, 2], "activation": "tanh", "dropout": 0.25, "bias": True,
                          "feature_fn": {"PolynomialFeatures": {"degree": 1, "interaction_only": False,
                                                                "include_bias": True}}}
