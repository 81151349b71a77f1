"""ONNX converters for convolution, pooling, normalisation, embedding and recurrent layers (and cells).

The converters read torch's class names and attribute names, so they are checked two ways:
- against torch itself, through a stand-in chainrule Module that carries a torch layer's attributes
  and weights and runs torch in its forward (always; torch is the oracle);
- on chainrule's own layer of the same name and arguments, once it exists in ``cr.nn`` (skipped
  only while the class does not exist yet).
"""

import numpy as np
import pytest
from test_onnx import roundtrip

import chainrule as cr
from chainrule import nn

# name -> (class, args, kwargs, per-example input shape)
CASES = {
    "conv1d": ("Conv1d", (3, 4, 3), {}, (3, 9)),
    "conv1d_strided_grouped": ("Conv1d", (3, 6, 5), dict(stride=2, padding=2, groups=3), (3, 11)),
    "conv1d_same_dilated": ("Conv1d", (2, 4, 4), dict(padding="same", dilation=2), (2, 10)),
    "conv2d": ("Conv2d", (3, 4, 3), dict(padding=1), (3, 6, 6)),
    "conv2d_everything": ("Conv2d", (4, 6, (3, 2)), dict(stride=(2, 1), padding=(1, 0), dilation=(1, 2), groups=2,
                                                          bias=False), (4, 7, 8)),
    "conv2d_same_even_kernel": ("Conv2d", (3, 4, 4), dict(padding="same"), (3, 7, 6)),
    "conv2d_valid": ("Conv2d", (3, 2, 3), dict(padding="valid"), (3, 5, 5)),
    "conv2d_reflect": ("Conv2d", (3, 4, 3), dict(padding=1, padding_mode="reflect"), (3, 5, 6)),
    "conv2d_replicate": ("Conv2d", (3, 4, 3), dict(padding=2, padding_mode="replicate"), (3, 5, 6)),
    "maxpool1d": ("MaxPool1d", (3,), dict(stride=2, padding=1), (2, 9)),
    "maxpool2d": ("MaxPool2d", (2,), {}, (3, 6, 6)),
    "maxpool2d_ceil": ("MaxPool2d", (3,), dict(stride=2, padding=1, ceil_mode=True), (2, 8, 7)),
    "maxpool2d_dilated": ("MaxPool2d", (2,), dict(dilation=2), (2, 7, 7)),
    "avgpool1d": ("AvgPool1d", (3,), dict(stride=2), (2, 9)),
    "avgpool2d": ("AvgPool2d", (2,), {}, (3, 6, 6)),
    "avgpool2d_pad_included": ("AvgPool2d", (3, 2), dict(padding=1), (2, 7, 7)),
    "avgpool2d_pad_excluded": ("AvgPool2d", (3, 2), dict(padding=1, count_include_pad=False), (2, 7, 7)),
    "avgpool2d_ceil": ("AvgPool2d", (3,), dict(stride=2, ceil_mode=True), (2, 8, 8)),
    "avgpool2d_ceil_padded": ("AvgPool2d", (3,), dict(stride=2, padding=1, ceil_mode=True), (2, 8, 7)),
    "adaptive_avg1d_global": ("AdaptiveAvgPool1d", (1,), {}, (3, 7)),
    "adaptive_avg1d_overlapping": ("AdaptiveAvgPool1d", (3,), {}, (3, 7)),
    "adaptive_avg2d_global": ("AdaptiveAvgPool2d", ((1, 1),), {}, (3, 5, 6)),
    "adaptive_avg2d": ("AdaptiveAvgPool2d", ((3, 2),), {}, (2, 5, 7)),
    "adaptive_avg2d_keep_height": ("AdaptiveAvgPool2d", ((None, 2),), {}, (2, 5, 6)),
    "batchnorm1d": ("BatchNorm1d", (4,), {}, (4,)),
    "batchnorm1d_sequence": ("BatchNorm1d", (4,), {}, (4, 6)),
    "batchnorm2d": ("BatchNorm2d", (3,), {}, (3, 5, 5)),
    "batchnorm2d_no_affine": ("BatchNorm2d", (3,), dict(affine=False), (3, 4, 4)),
    "layernorm": ("LayerNorm", (6,), {}, (6,)),
    "layernorm_2d": ("LayerNorm", ((3, 4),), {}, (2, 3, 4)),
    "layernorm_no_affine": ("LayerNorm", (6,), dict(elementwise_affine=False), (6,)),
    "layernorm_no_bias": ("LayerNorm", (6,), dict(bias=False), (6,)),
    "embedding": ("Embedding", (10, 4), {}, (5,)),
    "embedding_bag_mean": ("EmbeddingBag", (10, 4), {}, (5,)),
    "embedding_bag_sum": ("EmbeddingBag", (10, 4), dict(mode="sum"), (5,)),
    "embedding_bag_max": ("EmbeddingBag", (10, 4), dict(mode="max"), (5,)),
    "unflatten": ("Unflatten", (1, (2, 3)), {}, (6,)),
    "unflatten_inner": ("Unflatten", (2, (2, 2)), {}, (3, 4)),
    "rnn_cell": ("RNNCell", (4, 5), {}, (4,)),
    "rnn_cell_relu_no_bias": ("RNNCell", (4, 5), dict(nonlinearity="relu", bias=False), (4,)),
    "gru_cell": ("GRUCell", (4, 5), {}, (4,)),
    "lstm_cell": ("LSTMCell", (4, 5), {}, (4,)),
    "lstm_cell_no_bias": ("LSTMCell", (4, 5), dict(bias=False), (4,)),
    "rnn": ("RNN", (4, 5), {}, (3, 4)),  # (T, N, F): the first (dynamic) axis is time
    "rnn_relu_2layers_batch_first": ("RNN", (4, 5), dict(num_layers=2, nonlinearity="relu", batch_first=True), (6, 4)),
    "gru": ("GRU", (4, 5), {}, (3, 4)),
    "gru_bidirectional_2layers": ("GRU", (4, 5), dict(num_layers=2, bidirectional=True, batch_first=True), (6, 4)),
    "lstm": ("LSTM", (4, 5), dict(batch_first=True), (6, 4)),
    "lstm_bidirectional_2layers_no_bias": ("LSTM", (4, 5), dict(num_layers=2, bidirectional=True, bias=False), (3, 4)),
}


def _inputs(case):
    rng = np.random.default_rng(1)
    shape = CASES[case][3]
    if CASES[case][0] in ("Embedding", "EmbeddingBag"):
        return lambda n: rng.integers(0, CASES[case][1][0], (n, *shape)).astype(np.int64)
    return lambda n: rng.standard_normal((n, *shape)).astype(np.float32)


def _reference(case) -> bool:
    """onnx's ReferenceEvaluator implements RNN with Tanh only ("Unknown activation function 'Relu'");
    onnxruntime still checks that case."""
    return CASES[case][2].get("nonlinearity") != "relu"


def _randomise(tm, torch):
    """Non-trivial weights and running statistics (defaults would hide a swapped mean/var or gate)."""
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for p in tm.parameters():
            p.copy_(torch.randn(p.shape, generator=g) * 0.5)
        if getattr(tm, "running_mean", None) is not None:
            tm.running_mean.copy_(torch.randn(tm.running_mean.shape, generator=g))
            tm.running_var.copy_(torch.rand(tm.running_var.shape, generator=g) + 0.5)
    return tm.eval()


def standin(tm, torch):
    """A chainrule Module named like torch layer ``tm``, with its public attributes, parameters and
    buffers (as chainrule Tensors, None kept), whose forward runs ``tm`` in torch."""
    def to_cr(v):
        return tuple(to_cr(u) for u in v) if isinstance(v, tuple) else cr.Tensor(v.detach().numpy().copy())

    def forward(self, x):
        return to_cr(tm(torch.from_numpy(np.ascontiguousarray(x.numpy()))))

    m = type(type(tm).__name__, (cr.nn.Module,), {"forward": forward})()
    for k, v in vars(tm).items():
        if not k.startswith("_") and k != "training":
            setattr(m, k, v)
    for k, v in tm._parameters.items():
        setattr(m, k, None if v is None else cr.nn.Parameter(v.detach().numpy().copy()))
    for k, v in tm._buffers.items():
        setattr(m, k, None if v is None else cr.Tensor(v.numpy().copy()))
    return m


@pytest.mark.filterwarnings("ignore:Using padding='same' with even kernel")  # torch's note on its own speed
@pytest.mark.parametrize("case", sorted(CASES))
def test_converter_matches_torch(case, torch, tmp_path):
    cls, args, kwargs, shape = CASES[case]
    tm = _randomise(getattr(torch.nn, cls)(*args, **kwargs), torch)
    roundtrip(standin(tm, torch), shape, tmp_path, make=_inputs(case), reference=_reference(case))


# chainrule's recurrent layers are unidirectional (issue 16 does not ask for more): the bidirectional
# converter is checked on the torch stand-ins above
@pytest.mark.parametrize("case", sorted(c for c in CASES if not CASES[c][2].get("bidirectional")))
def test_chainrule_layer_exports(case, torch, tmp_path):
    cls, args, kwargs, shape = CASES[case]
    if not hasattr(cr.nn, cls):
        pytest.skip(f"cr.nn.{cls} does not exist yet")
    cr.manual_seed(0)
    m = getattr(cr.nn, cls)(*args, **kwargs)
    tm = _randomise(getattr(torch.nn, cls)(*args, **kwargs), torch)
    state = {k: v.detach().numpy().copy() for k, v in tm.state_dict().items()}
    m.load_state_dict({k: v for k, v in state.items() if k in m.state_dict()}, strict=False)
    roundtrip(m, shape, tmp_path, make=_inputs(case), reference=_reference(case))


def test_conv_net_in_a_sequential(torch, tmp_path):
    """A small CNN: stand-in conv/batchnorm/pool layers between chainrule's own activations, Flatten, Linear."""
    layers = [torch.nn.Conv2d(1, 4, 3, padding=1), torch.nn.BatchNorm2d(4), None, torch.nn.MaxPool2d(2),
              torch.nn.Conv2d(4, 8, 3), None, torch.nn.AdaptiveAvgPool2d((2, 2))]
    model = nn.Sequential(*[nn.ReLU() if t is None else standin(_randomise(t, torch), torch) for t in layers],
                          nn.Flatten(), nn.Linear(32, 10), nn.LogSoftmax(-1))
    roundtrip(model, (1, 8, 8), tmp_path)


def test_circular_padding_needs_opset_19(torch, tmp_path):
    tm = _randomise(torch.nn.Conv2d(2, 3, 3, padding=1, padding_mode="circular"), torch)
    roundtrip(standin(tm, torch), (2, 5, 6), tmp_path, opset=19)
    with pytest.raises(cr.onnx.ExportError, match=r"\(Conv2d\): padding_mode='circular'.*opset >= 19"):
        cr.onnx.build(standin(tm, torch), np.zeros((1, 2, 5, 6), np.float32), opset=17)


def test_ceil_mode_window_in_the_padding_exports_from_opset_22(torch, tmp_path):
    """torch drops a last ceil_mode window that would start in the right padding (size 5, kernel 2,
    stride 2, padding 1: 3 windows, not 4); ONNX's shape rule agrees from opset 22."""
    for tm in (torch.nn.MaxPool1d(2, stride=2, padding=1, ceil_mode=True),
               torch.nn.AvgPool2d(2, stride=2, padding=1, ceil_mode=True)):
        shape = (1, 5) if isinstance(tm, torch.nn.MaxPool1d) else (1, 5, 5)
        roundtrip(standin(tm.eval(), torch), shape, tmp_path, opset=22)


@pytest.mark.parametrize("cls, args, kwargs, shape, match", [
    ("MaxPool2d", (2,), dict(return_indices=True), (1, 4, 4), "return_indices=True"),
    ("AvgPool2d", (2,), dict(divisor_override=3), (1, 4, 4), "divisor_override=3"),
    ("MaxPool1d", (2,), dict(stride=2, padding=1, ceil_mode=True), (1, 5), r"torch drops the last window.*opset=22"),
    ("AvgPool2d", (2,), dict(stride=2, padding=1, ceil_mode=True), (1, 5, 5), r"torch drops the last window.*opset=22"),
    ("BatchNorm1d", (3,), dict(track_running_stats=False), (3,), "track_running_stats=False"),
    ("Embedding", (5, 2), dict(max_norm=1.0), (3,), "max_norm=1.0"),
    ("LSTM", (3, 4), dict(proj_size=2), (2, 3), "proj_size=2"),
    ("GRU", (3, 4), {}, (3,), r"batched 3-D input"),
    ("GRUCell", (3, 4), {}, (), r"batched 2-D input \(N, 3\)"),
    ("EmbeddingBag", (5, 2), dict(padding_idx=0), (3,), "padding_idx=0"),
    ("EmbeddingBag", (5, 2), dict(max_norm=1.0), (3,), "max_norm=1.0"),
    ("EmbeddingBag", (5, 2), {}, (), r"2-D input \(N, bag length\)"),
])
def test_unexportable_settings_say_which_layer_and_why(cls, args, kwargs, shape, match, torch):
    tm = getattr(torch.nn, cls)(*args, **kwargs).eval()
    model = nn.Sequential(nn.Identity(), standin(tm, torch))
    x = np.zeros((2, *shape), np.int64 if cls.startswith("Embedding") else np.float32)
    with pytest.raises(cr.onnx.ExportError, match=rf"cannot export 1 \({cls}\): .*{match}"):
        cr.onnx.build(model, x)


def test_adaptive_bins_are_torchs(torch):
    from chainrule.onnx._torch_layers import adaptive_bins
    for n_in, n_out in [(7, 3), (5, 5), (10, 4), (3, 7)]:
        x = np.random.default_rng(0).standard_normal((1, 1, n_in))
        want = torch.nn.functional.adaptive_avg_pool1d(torch.from_numpy(x), n_out).numpy()
        np.testing.assert_allclose(x @ adaptive_bins(n_in, n_out).T, want, rtol=1e-12)


@pytest.mark.parametrize("opset", [17, 18])
def test_embedding_bag_reductions_at_both_axes_conventions(opset, tmp_path):
    """ReduceMean/ReduceMax take their axes as an attribute before opset 18, ReduceSum as an input from 13."""
    for mode in ("sum", "mean", "max"):
        cr.manual_seed(0)
        make = lambda n: np.random.default_rng(n).integers(0, 12, (n, 4)).astype(np.int64)
        roundtrip(nn.EmbeddingBag(12, 3, mode=mode), (4,), tmp_path, opset=opset, make=make)
