"""cr.onnx.export: every built-in layer and the lecture's models pass onnx's full checker, and onnxruntime
and onnx's ReferenceEvaluator reproduce chainrule's outputs on random inputs at several batch sizes."""

from collections import OrderedDict

import numpy as np
import onnx  # the [onnx] extra is part of [test]: a missing package fails here, it is not skipped
import onnxruntime as ort
import pytest
from onnx.reference import ReferenceEvaluator

import chainrule as cr
from chainrule import models, nn

BATCHES = (1, 3, 17)


def _outputs(model, x):
    model.eval()
    with cr.no_grad():
        y = model(cr.Tensor(x))
    flat = lambda v: [u for w in v for u in flat(w)] if isinstance(v, (tuple, list)) else [v.numpy()]
    return flat(y)


def roundtrip(model, shape, tmp_path, opset=cr.onnx.DEFAULT_OPSET, dtype=np.float32, batches=BATCHES, make=None,
              tol=1e-5, reference=True):
    """Export with an example of batch 2, then compare onnxruntime and the ReferenceEvaluator with
    chainrule on fresh random inputs of other batch sizes (the dynamic batch axis)."""
    rng = np.random.default_rng(0)
    make = make or (lambda n: rng.standard_normal((n, *shape)).astype(dtype))
    path = tmp_path / "m.onnx"
    proto = cr.onnx.export(model, make(2), path, opset=opset)
    onnx.checker.check_model(onnx.load(path), full_check=True)
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    ref = ReferenceEvaluator(proto) if reference else None
    for n in batches:
        x = make(n)
        want = _outputs(model, x)
        for got in (sess.run(None, {"input": x}), *([ref.run(None, {"input": x})] if ref else [])):
            assert len(got) == len(want)
            for a, b in zip(got, want):
                assert a.shape == b.shape and a.dtype == b.dtype
                np.testing.assert_allclose(a, b, rtol=tol, atol=tol)
    return proto


LAYERS = {  # name -> (module factory, per-example input shape)
    "linear": (lambda: nn.Linear(5, 3), (5,)),
    "linear_no_bias": (lambda: nn.Linear(5, 3, bias=False), (5,)),
    "linear_3d": (lambda: nn.Linear(5, 3), (4, 5)),
    "linear_3d_no_bias": (lambda: nn.Linear(5, 3, bias=False), (4, 5)),
    "relu": (nn.ReLU, (6,)),
    "tanh": (nn.Tanh, (6,)),
    "sigmoid": (nn.Sigmoid, (6,)),
    "leaky_relu": (lambda: nn.LeakyReLU(0.2), (6,)),
    "gelu": (nn.GELU, (6,)),
    "gelu_tanh": (lambda: nn.GELU("tanh"), (6,)),
    "softmax": (lambda: nn.Softmax(dim=1), (6,)),
    "softmax_mid_axis": (lambda: nn.Softmax(dim=1), (4, 3)),
    "log_softmax": (lambda: nn.LogSoftmax(dim=-1), (2, 6)),
    "dropout": (lambda: nn.Dropout(0.3), (6,)),
    "dropout_unscaled": (lambda: nn.Dropout(0.3, scale=False), (6,)),
    "identity": (nn.Identity, (6,)),
    "flatten": (nn.Flatten, (2, 3, 4)),
    "flatten_inner": (lambda: nn.Flatten(2, 3), (2, 3, 4)),
    "flatten_all": (lambda: nn.Flatten(0, -1), (2, 3)),
    "sequential": (lambda: nn.Sequential(nn.Flatten(), nn.Linear(6, 8), nn.ReLU(), nn.Dropout(0.5), nn.Linear(8, 8),
                                         nn.Tanh(), nn.Linear(8, 8), nn.Sigmoid(), nn.Linear(8, 4), nn.LogSoftmax(-1)),
                   (2, 3)),
    "nested_sequential": (lambda: nn.Sequential(OrderedDict(body=nn.Sequential(nn.Linear(5, 4), nn.GELU()),
                                                            head=nn.Linear(4, 2))), (5,)),
}


@pytest.mark.parametrize("case", sorted(LAYERS))
def test_layer_roundtrip(case, tmp_path):
    factory, shape = LAYERS[case]
    cr.manual_seed(0)
    roundtrip(factory(), shape, tmp_path)


@pytest.mark.parametrize("opset", [17, 18, 20])
def test_opsets(opset, tmp_path):
    """GELU is the Gelu op from opset 20 (a formula before); ReduceProd takes axes as an input from 18."""
    cr.manual_seed(0)
    for model, shape in ((nn.Sequential(nn.Linear(4, 6), nn.GELU(), nn.Linear(6, 3), nn.GELU("tanh")), (4,)),
                         (models.LogisticRegression(10, feature_fn=models.PolynomialFeatures(2)), (3,))):
        proto = roundtrip(model, shape, tmp_path, opset=opset)
        assert proto.opset_import[0].version == opset
    ops = {n.op_type for n in cr.onnx.build(nn.GELU(), np.zeros((1, 2), np.float32), opset=opset).graph.node}
    assert ("Gelu" in ops) == (opset >= 20)


MODELS = {
    "logistic_regression": (lambda: models.LogisticRegression(5), (5,)),
    "logistic_regression_no_bias": (lambda: models.LogisticRegression(5, bias=False), (5,)),
    "logistic_poly": (lambda: models.LogisticRegression(9, feature_fn=models.PolynomialFeatures(2, include_bias=False)),
                      (3,)),
    "softmax_regression": (lambda: models.SoftmaxRegression(5, 4), (5,)),
    "softmax_poly_interactions": (lambda: models.SoftmaxRegression(
        8, 3, feature_fn=models.PolynomialFeatures(3, interaction_only=True)), (3,)),
    "mlp_relu": (lambda: models.MLP([5, 16, 3]), (5,)),
    "mlp_deep_tanh_dropout": (lambda: models.MLP([5, 16, 8, 3], activation="tanh", dropout=0.3), (5,)),
    "mlp_sigmoid": (lambda: models.MLP([5, 8, 1], activation="sigmoid"), (5,)),
    "mlp_leaky_gelu": (lambda: nn.Sequential(models.MLP([5, 8, 4], activation="leaky_relu"),
                                             models.MLP([4, 8, 2], activation="gelu")), (5,)),
    "mlp_identity_poly": (lambda: models.MLP([5, 4, 2], activation="identity",
                                             feature_fn=models.PolynomialFeatures(2, include_bias=False)), (2,)),
    "mlp_custom_activation_class": (lambda: models.MLP([5, 8, 3], activation=nn.Tanh), (5,)),
    "cnn1d": (lambda: models.CNN1d(channels=6), (40,)),
    "cnn1d_batch_norm_dropout": (lambda: _with_running_stats(models.CNN1d(channels=6, dropout=0.3, batch_norm=True)),
                                 (40,)),
    "gru_classifier_all": (lambda: models.GRUClassifier(hidden_size=6), (40,)),
    "gru_classifier_last_2layers": (lambda: models.GRUClassifier(12, 3, hidden_size=5, num_layers=2, input_size=3,
                                                                 readout="last"), (12,)),
}


def _with_running_stats(model):
    """Running statistics away from (0, 1), so a converter that ignored them would fail."""
    rng = np.random.default_rng(2)
    for m in model.modules():
        if getattr(m, "running_mean", None) is not None:
            m.running_mean._data[:] = rng.standard_normal(m.running_mean.shape)
            m.running_var._data[:] = rng.uniform(0.5, 2.0, m.running_var.shape)
    return model


@pytest.mark.parametrize("case", sorted(MODELS))
def test_lecture_models_roundtrip(case, tmp_path):
    factory, shape = MODELS[case]
    cr.manual_seed(1)
    roundtrip(factory(), shape, tmp_path)


def test_float64_model(tmp_path):
    cr.manual_seed(0)
    model = models.MLP([4, 8, 3], activation="tanh").double()
    proto = roundtrip(model, (4,), tmp_path, dtype=np.float64, tol=1e-12)
    assert proto.graph.input[0].type.tensor_type.elem_type == onnx.TensorProto.DOUBLE


def test_float64_example_of_a_float32_model_is_exported_as_float32(tmp_path):
    model = models.MLP([4, 8, 3])
    proto = cr.onnx.export(model, np.zeros((2, 4)), tmp_path / "m.onnx")
    assert proto.graph.input[0].type.tensor_type.elem_type == onnx.TensorProto.FLOAT


def test_batch_axis_is_symbolic_only_when_asked(tmp_path):
    model = models.SoftmaxRegression(4, 3)
    dims = lambda v: [d.dim_param or d.dim_value for d in v.type.tensor_type.shape.dim]
    p = cr.onnx.export(model, np.zeros((2, 4), np.float32), tmp_path / "a.onnx")
    assert dims(p.graph.input[0]) == ["batch", 4] and dims(p.graph.output[0]) == ["batch", 3]
    p = cr.onnx.export(model, np.zeros((2, 4), np.float32), tmp_path / "b.onnx", dynamic_batch=False)
    assert dims(p.graph.input[0]) == [2, 4] and dims(p.graph.output[0]) == [2, 3]
    sess = ort.InferenceSession(str(tmp_path / "b.onnx"), providers=["CPUExecutionProvider"])
    with pytest.raises(Exception, match="[Dd]imension|dims"):
        sess.run(None, {"input": np.zeros((3, 4), np.float32)})


def test_export_uses_eval_mode_and_restores_training(tmp_path):
    model = models.MLP([4, 32, 2], dropout=0.5)
    model.train()
    roundtrip(model, (4,), tmp_path)  # dropout would make any comparison fail in training mode
    model.train()
    cr.onnx.export(model, np.zeros((2, 4), np.float32), tmp_path / "m.onnx")
    assert model.training and all(m.training for m in model.modules())


def test_check_reports_the_largest_difference(tmp_path):
    model = models.MLP([4, 8, 3])
    cr.onnx.export(model, np.zeros((2, 4), np.float32), tmp_path / "m.onnx")
    x = np.random.default_rng(0).standard_normal((9, 4)).astype(np.float32)
    assert cr.onnx.check(model, tmp_path / "m.onnx", x) < 1e-5
    with cr.no_grad():
        model.layers[0].bias._data += 1.0  # the file no longer matches the model
    assert cr.onnx.check(model, tmp_path / "m.onnx", x) > 1e-3


# ----- what cannot be exported says which layer and why -------------------------------------------
class Doubler(cr.nn.Module):
    def forward(self, x):
        return x * 2


def test_unknown_layer_names_its_path_and_class(tmp_path):
    model = nn.Sequential(nn.Linear(3, 3), nn.Sequential(nn.ReLU(), Doubler()))
    with pytest.raises(cr.onnx.ExportError, match=r"1\.1 \(Doubler\).*no ONNX converter for Doubler.*register"):
        cr.onnx.export(model, np.zeros((2, 3), np.float32), tmp_path / "m.onnx")


def test_a_subclass_that_overrides_forward_is_not_exported_as_its_base(tmp_path):
    class ScaledReLU(nn.ReLU):
        def forward(self, x):
            return cr.relu(x) * 3

    class MyReLU(nn.ReLU):  # same forward: exported as a ReLU
        pass

    roundtrip(nn.Sequential(nn.Linear(3, 3), MyReLU()), (3,), tmp_path)
    with pytest.raises(cr.onnx.ExportError, match="ScaledReLU"):
        cr.onnx.export(nn.Sequential(ScaledReLU()), np.zeros((2, 3), np.float32), tmp_path / "m.onnx")


def test_register_a_converter_for_a_new_layer(tmp_path):
    @cr.onnx.register("Doubler")
    def doubler(g, m, name, inp, x):
        return g.node("Mul", [inp, g.const(f"{name}.two", 2.0)], name)

    try:
        roundtrip(nn.Sequential(nn.Linear(3, 4), Doubler()), (3,), tmp_path)
    finally:
        cr.onnx._CONVERTERS.pop("Doubler")


def test_a_layer_without_torchs_attribute_names_says_which_attribute(tmp_path):
    class Conv2d(cr.nn.Module):  # a look-alike that names its stride differently
        def __init__(self):
            self.weight, self.bias, self.step, self.padding = cr.nn.Parameter(np.ones((2, 1, 3, 3))), None, 1, 0

        def forward(self, x):
            return x

    with pytest.raises(cr.onnx.ExportError, match=r"0 \(Conv2d\): .*PyTorch's attribute names.*'stride'"):
        cr.onnx.build(nn.Sequential(Conv2d()), np.zeros((1, 1, 5, 5), np.float32))


@pytest.mark.parametrize("model, match", [
    (nn.ModuleList([nn.ReLU()]), r"ModuleList\).*no forward.*Sequential"),
    (nn.Sequential(nn.Linear(3, 3), nn.CrossEntropyLoss()), r"1 \(CrossEntropyLoss\): a loss takes \(input, target\)"),
    (nn.Sequential(nn.Unflatten(0, (-1, 2))), r"Unflatten\): .*-1 on the batch axis"),
    (models.LogisticRegression(3, feature_fn=lambda x: x), r"feature_fn .* only PolynomialFeatures"),
])
def test_unexportable_models_say_why(model, match, tmp_path):
    with pytest.raises(cr.onnx.ExportError, match=match):
        cr.onnx.build(model, np.zeros((2, 3), np.float32))


def test_bad_opset_and_model_type():
    with pytest.raises(ValueError, match=r"opset must be in \[17, "):
        cr.onnx.build(nn.ReLU(), np.zeros((1, 2), np.float32), opset=11)
    with pytest.raises(TypeError, match="chainrule.nn.Module"):
        cr.onnx.build(lambda x: x, np.zeros((1, 2), np.float32))


# ----- chainrule export RUN_DIR --format onnx -----------------------------------------------------
def test_cli_export_takes_raw_features(tmp_path, capsys):
    import json

    from chainrule import datasets, io
    from chainrule.cli import main
    from chainrule.cli.rundir import standardize as _standardize
    run = tmp_path / "run"
    assert main(["train", "--data", "iris", "--epochs", "2", "--hidden", "8", "--out", str(run), "--quiet"]) == 0
    assert main(["export", str(run), "--format", "onnx"]) == 0
    out = capsys.readouterr().out
    assert f"wrote {run / 'model.onnx'}" in out and "max |difference|" in out
    cfg = json.loads((run / "config.json").read_text())
    X = datasets.load("iris", seed=cfg["seed"]).X_test.astype(np.float32)
    model = io.load_model(run / "model.safetensors")
    with cr.no_grad():
        want = model.eval()(cr.Tensor(_standardize(X, cfg["scaler"]))).numpy()
    sess = ort.InferenceSession(str(run / "model.onnx"), providers=["CPUExecutionProvider"])
    np.testing.assert_allclose(sess.run(None, {"input": X})[0], want, rtol=1e-5, atol=1e-5)
    meta = {p.key: p.value for p in onnx.load(run / "model.onnx").metadata_props}
    assert json.loads(meta["target_names"]) == cfg["target_names"]

    bare = tmp_path / "bare.onnx"
    assert main(["export", str(run), "--out", str(bare), "--no-standardize", "--opset", "20"]) == 0
    sess = ort.InferenceSession(str(bare), providers=["CPUExecutionProvider"])
    np.testing.assert_allclose(sess.run(None, {"input": _standardize(X, cfg["scaler"])})[0], want, rtol=1e-5, atol=1e-5)


def test_cli_export_of_a_cnn_run(tmp_path, capsys):
    """A `chainrule train --model cnn` run exports too (CNN1d: Unflatten, Conv1d, ReLU, Flatten, Linear)."""
    from chainrule.cli import main
    run = tmp_path / "run"
    assert main(["train", "--data", "mnist1d", "--model", "cnn", "--hidden", "4", "--epochs", "1", "--out", str(run),
                 "--quiet"]) == 0
    assert main(["export", str(run)]) == 0
    assert "onnxruntime reproduces chainrule's outputs" in capsys.readouterr().out
    sess = ort.InferenceSession(str(run / "model.onnx"), providers=["CPUExecutionProvider"])
    assert sess.run(None, {"input": np.zeros((7, 40), np.float32)})[0].shape == (7, 10)


def test_cli_export_of_a_directory_that_is_not_a_run(tmp_path, capsys):
    from chainrule.cli import main
    assert main(["export", str(tmp_path)]) == 2
    assert "not a chainrule run directory" in capsys.readouterr().err
