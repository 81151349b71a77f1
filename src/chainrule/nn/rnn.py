"""Recurrent layers, the twins of ``torch.nn.RNN``, ``GRU``, ``LSTM`` and their cells.

Same constructor arguments, parameter names (``weight_ih_l0``, ``weight_hh_l0``, ``bias_ih_l0``,
``bias_hh_l0``; a cell's drop the ``_l0``), gate order (GRU: r, z, n; LSTM: i, f, g, o), shapes and
initialisation ``U(-1/sqrt(H), 1/sqrt(H))`` as PyTorch, so state_dicts copy both ways.

A layer computes the input projections of all time steps in one product ``x W_ih^T + b_ih``
(T, B, gates * H), then runs the recurrence as one node (:func:`chainrule.ops_rnn.rnn_scan`): per
step a single product with ``W_hh`` and the gate arithmetic in place. For the RNN and the LSTM the
two biases enter only as their sum, so ``b_hh`` is folded into the input projection; the GRU keeps
``b_hn`` inside ``r * (W_hn h + b_hn)``, as PyTorch's equations have it.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from .. import functional as F
from .. import ops
from ..ops_rnn import GATES, rnn_scan
from ..tensor import DEFAULT_DTYPE, Tensor
from . import init
from ._checks import match_dtype, param, positive_int
from .module import Module


def _layer(xs: Any, h0: Any, w_ih: Tensor, w_hh: Tensor, b_ih: Tensor | None, b_hh: Tensor | None,
           mode: str) -> Any:
    """All states (T, B, S) of one layer on time-major input (T, B, I)."""
    T, B, n_in = xs.shape
    x2 = ops.reshape(xs, shape=(T * B, n_in))  # a 2-D product goes to BLAS; a batched one may not
    if b_ih is not None and mode != "gru":  # only b_ih + b_hh matters: fold it into the one product
        b_ih, b_hh = ops.add(b_ih, b_hh), None
    xp = ops.linear(x2, w_ih) if b_ih is None else ops.linear(x2, w_ih, b_ih)
    xp = ops.reshape(xp, shape=(T, B, xp.shape[1]))
    return rnn_scan(xp, h0, w_hh, mode=mode) if b_hh is None else rnn_scan(xp, h0, w_hh, b_hh, mode=mode)


class RNNBase(Module):
    """Shared constructor and forward of :class:`RNN`, :class:`GRU` and :class:`LSTM`."""

    def __init__(self, mode: str, input_size: int, hidden_size: int, num_layers: int = 1, bias: bool = True,
                 batch_first: bool = False, dropout: float = 0.0, bidirectional: bool = False,
                 proj_size: int = 0, device: Any = None, dtype: Any = None):
        super().__init__()
        cls = type(self).__name__
        self.mode = mode
        self.input_size = positive_int(cls, "input_size", input_size)
        self.hidden_size = positive_int(cls, "hidden_size", hidden_size)
        self.num_layers = positive_int(cls, "num_layers", num_layers)
        if bidirectional:
            raise ValueError(f"{cls}: bidirectional=True is not supported; run a second {cls} on the "
                             "time-reversed input and concatenate the outputs")
        if proj_size:
            raise ValueError(f"{cls}: proj_size={proj_size!r} is not supported (only 0)")
        if device not in (None, "cpu"):
            raise ValueError(f"{cls}: only device='cpu' exists, got {device!r}")
        if isinstance(dropout, bool) or not isinstance(dropout, (int, float)) or not 0 <= dropout <= 1:
            raise ValueError(f"{cls}: dropout must be a number in [0, 1], got {dropout!r}")
        self.bias, self.batch_first, self.dropout = bool(bias), bool(batch_first), float(dropout)
        self.bidirectional, self.proj_size = False, 0
        dtype = np.dtype(DEFAULT_DTYPE if dtype is None else dtype)
        G, H = GATES[mode] * self.hidden_size, self.hidden_size
        for k in range(self.num_layers):  # torch's order: weight_ih, weight_hh, bias_ih, bias_hh per layer
            n_in = self.input_size if k == 0 else H
            setattr(self, f"weight_ih_l{k}", param(np.zeros((G, n_in), dtype)))
            setattr(self, f"weight_hh_l{k}", param(np.zeros((G, H), dtype)))
            if self.bias:
                setattr(self, f"bias_ih_l{k}", param(np.zeros((G,), dtype)))
                setattr(self, f"bias_hh_l{k}", param(np.zeros((G,), dtype)))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Every weight and bias ~ U(-1/sqrt(H), 1/sqrt(H)), as PyTorch."""
        bound = 1.0 / math.sqrt(self.hidden_size)
        for p in self.parameters():
            init.uniform_(p, -bound, bound)

    def flatten_parameters(self) -> None:
        """Nothing to do (torch compacts its weights for cuDNN here); kept so torch code runs."""

    def _weights(self, k: int) -> tuple:
        get = lambda n: getattr(self, f"{n}_l{k}", None)  # noqa: E731
        return get("weight_ih"), get("weight_hh"), get("bias_ih"), get("bias_hh")

    def _check_input(self, x: Any) -> tuple[Any, bool]:
        cls = type(self).__name__
        if x.ndim not in (2, 3):
            raise ValueError(f"{cls}: input must be (T, B, {self.input_size}) "
                             f"{'with batch_first=True (B, T, I) ' if self.batch_first else ''}"
                             f"or unbatched (T, {self.input_size}), got shape {tuple(x.shape)}")
        if x.shape[-1] != self.input_size:
            raise ValueError(f"{cls}: input has {x.shape[-1]} features (shape {tuple(x.shape)}) but "
                             f"input_size={self.input_size}")
        batched = x.ndim == 3
        if not batched:
            x = ops.reshape(x, shape=(x.shape[0], 1, x.shape[1]))
        elif self.batch_first:
            x = ops.transpose(x, axes=(1, 0, 2))
        if x.shape[0] == 0:
            raise ValueError(f"{cls}: the input sequence is empty (shape {tuple(x.shape)})")
        return x, batched

    def _state(self, h: Any, B: int, batched: bool, name: str, dtype: np.dtype) -> Any:
        want = (self.num_layers, B, self.hidden_size)
        if h is None:
            return np.zeros(want, dtype)
        h = match_dtype(type(self).__name__, h, dtype)
        shape = tuple(h.shape)
        if (shape if batched else (shape[0], 1) + shape[1:]) != want or len(shape) != (3 if batched else 2):
            raise ValueError(f"{type(self).__name__}: {name} must have shape {want if batched else (want[0], want[2])}"
                             f" (num_layers, {'batch, ' if batched else ''}hidden_size), got {shape}")
        return h if batched else ops.reshape(h, shape=want)

    def _run(self, x: Any, h0: Any, c0: Any = None) -> tuple[Any, list, list]:
        """The stacked layers on time-major x: the last layer's states and each layer's final h (and c)."""
        H, lstm = self.hidden_size, self.mode == "lstm"
        hs, cs = [], []
        for k in range(self.num_layers):
            if k and self.dropout and self.training:
                x = F.dropout(x, self.dropout, True)
            s0 = ops.concatenate(h0[k], c0[k], axis=-1) if lstm else h0[k]
            out = _layer(x, s0, *self._weights(k), self.mode)
            x = out[:, :, :H] if lstm else out
            hs.append(out[-1, :, :H] if lstm else out[-1])
            if lstm:
                cs.append(out[-1, :, H:])
        return x, hs, cs

    def _finish(self, out: Any, batched: bool) -> Any:
        if not batched:
            return ops.reshape(out, shape=(out.shape[0], out.shape[2]))
        return ops.transpose(out, axes=(1, 0, 2)) if self.batch_first else out

    def _final(self, hs: list, batched: bool) -> Any:
        h = F.stack(hs, 0) if len(hs) > 1 else ops.reshape(hs[0], shape=(1,) + tuple(hs[0].shape))
        return h if batched else ops.reshape(h, shape=(h.shape[0], h.shape[2]))

    def forward(self, input: Any, hx: Any = None) -> tuple[Tensor, Any]:  # noqa: A002
        """``(output, h_n)``: output (T, B, H) (batch_first: (B, T, H)) holds the last layer's h_t for
        every t, h_n (num_layers, B, H) every layer's last state. hx defaults to zeros."""
        dtype = self.weight_ih_l0.dtype
        x, batched = self._check_input(match_dtype(type(self).__name__, input, dtype))
        h0 = self._state(hx, x.shape[1], batched, "hx", dtype)
        out, hs, _ = self._run(x, h0)
        return self._finish(out, batched), self._final(hs, batched)

    def extra_repr(self) -> str:
        s = f"{self.input_size}, {self.hidden_size}"
        if self.num_layers != 1:
            s += f", num_layers={self.num_layers}"
        if not self.bias:
            s += ", bias=False"
        if self.batch_first:
            s += ", batch_first=True"
        if self.dropout:
            s += f", dropout={self.dropout}"
        return s


class RNN(RNNBase):
    """Elman RNN ``h_t = g(x_t W_ih^T + b_ih + h_{t-1} W_hh^T + b_hh)``, g = tanh or relu (``nonlinearity``)."""

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1, nonlinearity: str = "tanh",
                 bias: bool = True, batch_first: bool = False, dropout: float = 0.0, bidirectional: bool = False,
                 device: Any = None, dtype: Any = None):
        if nonlinearity not in ("tanh", "relu"):
            raise ValueError(f"RNN: nonlinearity must be 'tanh' or 'relu', got {nonlinearity!r}")
        self.nonlinearity = nonlinearity
        super().__init__(f"rnn_{nonlinearity}", input_size, hidden_size, num_layers, bias, batch_first, dropout,
                         bidirectional, device=device, dtype=dtype)


class GRU(RNNBase):
    """Gated recurrent unit with PyTorch's equations; gates r, z, n in the weights' rows.

    ::

        r_t = s(W_ir x_t + b_ir + W_hr h + b_hr)     z_t = s(W_iz x_t + b_iz + W_hz h + b_hz)
        n_t = tanh(W_in x_t + b_in + r_t * (W_hn h + b_hn))
        h_t = (1 - z_t) * n_t + z_t * h_{t-1}
    """

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1, bias: bool = True,
                 batch_first: bool = False, dropout: float = 0.0, bidirectional: bool = False,
                 device: Any = None, dtype: Any = None):
        super().__init__("gru", input_size, hidden_size, num_layers, bias, batch_first, dropout, bidirectional,
                         device=device, dtype=dtype)


class LSTM(RNNBase):
    """Long short-term memory with PyTorch's equations; gates i, f, g, o in the weights' rows.

    ::

        i, f, o = s(W_i* x_t + b_i* + W_h* h + b_h*)     g = tanh(W_ig x_t + b_ig + W_hg h + b_hg)
        c_t = f * c_{t-1} + i * g                      h_t = o * tanh(c_t)

    ``forward(input, (h0, c0))`` returns ``(output, (h_n, c_n))``.
    """

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1, bias: bool = True,
                 batch_first: bool = False, dropout: float = 0.0, bidirectional: bool = False,
                 proj_size: int = 0, device: Any = None, dtype: Any = None):
        super().__init__("lstm", input_size, hidden_size, num_layers, bias, batch_first, dropout, bidirectional,
                         proj_size, device=device, dtype=dtype)

    def forward(self, input: Any, hx: Any = None) -> tuple[Tensor, tuple[Tensor, Tensor]]:  # noqa: A002
        dtype = self.weight_ih_l0.dtype
        x, batched = self._check_input(match_dtype("LSTM", input, dtype))
        if hx is not None and (not isinstance(hx, (tuple, list)) or len(hx) != 2):
            raise ValueError(f"LSTM: hx must be a tuple (h0, c0), got {type(hx).__name__}")
        h0, c0 = (None, None) if hx is None else hx
        h0 = self._state(h0, x.shape[1], batched, "h0", dtype)
        c0 = self._state(c0, x.shape[1], batched, "c0", dtype)
        out, hs, cs = self._run(x, h0, c0)
        return self._finish(out, batched), (self._final(hs, batched), self._final(cs, batched))


# ----- cells: one step, the same primitive with T = 1 ---------------------------------------------
class RNNCellBase(Module):
    """Shared constructor and step of :class:`RNNCell`, :class:`GRUCell` and :class:`LSTMCell`."""

    def __init__(self, mode: str, input_size: int, hidden_size: int, bias: bool = True, device: Any = None,
                 dtype: Any = None):
        super().__init__()
        cls = type(self).__name__
        self.mode = mode
        self.input_size = positive_int(cls, "input_size", input_size)
        self.hidden_size = positive_int(cls, "hidden_size", hidden_size)
        self.bias = bool(bias)
        if device not in (None, "cpu"):
            raise ValueError(f"{cls}: only device='cpu' exists, got {device!r}")
        dtype = np.dtype(DEFAULT_DTYPE if dtype is None else dtype)
        G, H = GATES[mode] * self.hidden_size, self.hidden_size
        self.weight_ih = param(np.zeros((G, self.input_size), dtype))
        self.weight_hh = param(np.zeros((G, H), dtype))
        self.bias_ih = param(np.zeros((G,), dtype)) if bias else None
        self.bias_hh = param(np.zeros((G,), dtype)) if bias else None
        RNNBase.reset_parameters(self)  # type: ignore[arg-type]

    def _step(self, x: Any, states: tuple) -> tuple[Any, bool]:
        """The new state ``[h | c]`` (B, S) from input (B, I) or (I,) and the given states."""
        cls, dtype = type(self).__name__, self.weight_ih.dtype
        x = match_dtype(cls, x, dtype)
        if x.ndim not in (1, 2) or x.shape[-1] != self.input_size:
            raise ValueError(f"{cls}: input must be (batch, {self.input_size}) or ({self.input_size},), "
                             f"got shape {tuple(x.shape)}")
        batched = x.ndim == 2
        B = x.shape[0] if batched else 1
        x = ops.reshape(x, shape=(1, B, self.input_size))
        want = (B, self.hidden_size)
        ss = []
        for name, s in states:
            if s is None:
                ss.append(np.zeros(want, dtype))
                continue
            s = match_dtype(cls, s, dtype)
            if tuple(s.shape) != (want if batched else want[1:]):
                raise ValueError(f"{cls}: {name} must have shape {want if batched else want[1:]}, got {tuple(s.shape)}")
            ss.append(s if batched else ops.reshape(s, shape=want))
        s0 = ss[0] if len(ss) == 1 else ops.concatenate(*ss, axis=-1)
        out = _layer(x, s0, self.weight_ih, self.weight_hh, self.bias_ih, self.bias_hh, self.mode)
        return ops.reshape(out, shape=out.shape[1:] if batched else out.shape[2:]), batched

    def forward(self, input: Any, hx: Any = None) -> Tensor:  # noqa: A002
        """``h'`` (B, H) from input (B, I) and hx (B, H) (zeros by default); unbatched (I,) -> (H,)."""
        return self._step(input, (("hx", hx),))[0]

    def extra_repr(self) -> str:
        return f"{self.input_size}, {self.hidden_size}" + ("" if self.bias else ", bias=False")


class RNNCell(RNNCellBase):
    """One step of :class:`RNN`: ``h' = g(x W_ih^T + b_ih + h W_hh^T + b_hh)``."""

    def __init__(self, input_size: int, hidden_size: int, bias: bool = True, nonlinearity: str = "tanh",
                 device: Any = None, dtype: Any = None):
        if nonlinearity not in ("tanh", "relu"):
            raise ValueError(f"RNNCell: nonlinearity must be 'tanh' or 'relu', got {nonlinearity!r}")
        self.nonlinearity = nonlinearity
        super().__init__(f"rnn_{nonlinearity}", input_size, hidden_size, bias, device, dtype)


class GRUCell(RNNCellBase):
    """One step of :class:`GRU` (the same equations)."""

    def __init__(self, input_size: int, hidden_size: int, bias: bool = True, device: Any = None, dtype: Any = None):
        super().__init__("gru", input_size, hidden_size, bias, device, dtype)


class LSTMCell(RNNCellBase):
    """One step of :class:`LSTM`: ``forward(input, (h, c))`` returns ``(h', c')``."""

    def __init__(self, input_size: int, hidden_size: int, bias: bool = True, device: Any = None, dtype: Any = None):
        super().__init__("lstm", input_size, hidden_size, bias, device, dtype)

    def forward(self, input: Any, hx: Any = None) -> tuple[Tensor, Tensor]:  # noqa: A002
        if hx is not None and (not isinstance(hx, (tuple, list)) or len(hx) != 2):
            raise ValueError(f"LSTMCell: hx must be a tuple (h, c), got {type(hx).__name__}")
        h, c = (None, None) if hx is None else hx
        s, _ = self._step(input, (("h", h), ("c", c)))
        H = self.hidden_size
        return s[..., :H], s[..., H:]
