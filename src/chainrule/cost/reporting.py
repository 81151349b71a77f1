"""The report: the lecture's figure, the full estimate and (optionally) a measured training step
side by side, with measured / estimate ratios and a sentence for every gap larger than 10%."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from .._text import grid, html_pre, html_table, human_bytes
from ..functional import cross_entropy
from . import lecture
from .estimation import Estimate, estimate
from .measurement import Measurement
from .measurement import measure as _measure
from .optimizers import default_optimizer


@dataclass
class Report:
    """What :func:`report` printed: the estimate, the measurement (or None) and the text."""

    estimate: Estimate
    measurement: Measurement | None
    text: str

    def __str__(self) -> str:
        return self.text

    def _repr_html_(self) -> str:  # Jupyter: the table as HTML, the same cells as the text
        return html(self.estimate, self.measurement)

    def __repr__(self) -> str:
        m = "measured" if self.measurement is not None else "estimate only"
        return f"<cost.Report batch={self.estimate.batch_size} optimizer={self.estimate.optimizer} ({m})>"


def comparison_rows(e: Estimate, m: Measurement | None):
    """(label, unit, lecture, estimate, measured, why-if-gap) rows."""
    isz, B, s = e.dtype.itemsize, e.batch_size, e.sizes
    lec, mem, c = e.lecture, e.memory, e.compute
    pk = m.training_peak if m else {}
    f = m.flops if m else {}
    fw, bw = f.get("forward", {}), f.get("backward", {})
    relu_saved = sum(lc.saved for lc in e.layers if lc.kind not in ("linear", "loss"))
    loss_saved = sum(lc.saved for lc in e.layers if lc.kind == "loss")
    first_dx = e.layers[0].forward_macs - e.layers[0].backward_input_macs if not e.input_requires_grad else 0
    why_other = ("some layer's rule prices work its primitives do not do (or miss some): every backward "
                 "FLOP runs in a primitive, so estimate and measurement should agree; compare m.ops per primitive")
    rows = [
        ("parameters", "count", lec["parameters"], e.parameters, m.parameters if m else None,
         f"the lecture ignores the {e.parameters - lec['parameters']:,} biases" if e.parameters >= lec["parameters"]
         else "the lecture's formulas treat the network as Linear layers of these widths; a convolution shares its "
              "weights across positions (a recurrent layer across steps), so it has far fewer"),
        ("memory: parameters", "bytes", lec["parameters"] * isz, mem["parameters"], pk.get("parameters"), ""),
        ("memory: gradients", "bytes", 0, mem["gradients_at_peak"], pk.get("gradients"),
         "the lecture leaves out the gradients: one number per parameter during backward"),
        ("memory: optimizer state", "bytes", (lec["training_memory"] - lec["parameters"] - B * sum(s)) * isz,
         mem["optimizer_state"], m.optimizer_state if m else None, "biases have optimizer state too"),
        ("memory: optimizer scratch", "bytes", 0, mem["optimizer_scratch"], m.optimizer_scratch if m else None,
         "chainrule's optimizers keep work arrays allocated once (per parameter, or CHUNK-sized blocks "
         "shared by all parameters) so the update runs in place"),
        ("memory: saved activations", "bytes", B * sum(s) * isz, mem["activations"], m.saved_by_graph if m else None,
         (f"each unfused activation's node keeps its input ({human_bytes(relu_saved * isz)}; fused into its "
          "Linear, as nn.Sequential does for ReLU/Tanh/Sigmoid, it keeps nothing, like PyTorch's ReLU); " if relu_saved
          else "activations are fused into their Linear and keep nothing extra (like PyTorch's ReLU); ")
         + f"the loss keeps softmax(z) and the labels ({human_bytes(loss_saved * isz - B * s[-1] * isz + B * 8)})"),
        ("memory: activations at peak", "bytes", B * sum(s) * isz, mem["activations_at_peak"], pk.get("activations"),
         "backward frees each node's saved arrays once its rule has run, so at the peak (while the gradients "
         "pile up) only the layers not yet reached still hold theirs; the input batch and labels stay"),
        ("memory: temporaries at peak", "bytes", 0, mem["temporaries"], pk.get("temporaries"),
         "gradients in flight during backward (the incoming gradient and the one being produced)"),
        ("memory: training peak", "bytes", lec["training_memory"] * isz, mem["training_total"], pk.get("total"),
         "the lines above"),
        ("memory: training peak (tracemalloc)", "bytes", None, mem["training_total"],
         m.tracemalloc_peak if m else None, ("", "NumPy's temporaries inside primitives and Python objects")),
        ("memory: inference peak", "bytes", lec["inference_memory"] * isz, mem["inference_total"],
         m.memory["inference"]["total"] if m else None,
         "the lecture counts one activation; the input batch stays alive and each op holds its input and "
         "output together"),
        ("compute: forward MACs", "MACs", lec["inference_compute"], c["forward_macs"], fw.get("macs"), ""),
        ("compute: forward FLOPs", "FLOPs", 2 * lec["inference_compute"], c["forward_flops"], fw.get("flops"),
         "bias adds, activations and the loss are elementwise FLOPs the lecture leaves out"),
        ("compute: backward dX MACs", "MACs", lec["inference_compute"], c["backward_input_macs"],
         bw.get("input_macs"), f"the first layer's input gradient ({first_dx:,} MACs) is not needed, so the "
         "engine skips it" if first_dx else ""),
        ("compute: backward dW MACs", "MACs", lec["inference_compute"], c["backward_weight_macs"],
         bw.get("weight_macs"), ""),
        ("compute: backward other FLOPs", "FLOPs", 0, c["backward_other_flops"], bw.get("other_flops"),
         ("bias gradients (row sums), the activations' derivatives and the loss's gradient", why_other)),
        ("compute: backward FLOPs", "FLOPs", 4 * lec["inference_compute"], c["backward_flops"], bw.get("flops"),
         ("the first layer's input gradient is skipped; elementwise work is added", why_other)),
        ("compute: optimizer step FLOPs", "FLOPs", None, c["step_flops"],
         (f.get("step", {}).get("flops") if m and m.step_counted else None),
         ("", "the optimizer updates with NumPy in place (no primitives), so its FLOPs are not counted")),
        ("compute: inference FLOPs", "FLOPs", 2 * lec["inference_compute"], c["inference_flops"],
         f.get("inference", {}).get("flops"), "bias adds and activations"),
    ]
    return rows


def _cell(v, unit) -> str:
    if v is None:
        return "-"
    return human_bytes(v) if unit == "bytes" else f"{v:,}"


def _ratio(a, b) -> float | None:
    if a is None or b is None:
        return None
    if a == 0:
        return None if b == 0 else math.inf
    return b / a


def report(model: Any, batch_size: int | None = None, optimizer: Any = None, measure: bool = False,
           input_shape: Sequence[int] | None = None, x: Any = None, y: Any = None, loss_fn: Callable | None = None,
           verbose: bool = True, seed: int = 0, **estimate_kw: Any) -> Report:
    """Print one table: the lecture's figure, the full estimate, and (``measure=True``) a measured
    training step, with measured / estimate ratios and a line for every gap larger than 10%.

    Measuring uses ``x``, ``y`` (random inputs and class labels of ``batch_size`` rows when not
    given), ``loss_fn`` (cross-entropy) and the optimizer (a new chainrule optimizer when given by
    name); the model's parameters and the optimizer's state are restored afterwards.
    """
    batch_size = int(batch_size) if batch_size is not None else (len(x) if x is not None else 1)
    optimizer = "adam" if optimizer is None else optimizer
    est = estimate(model, batch_size, input_shape=input_shape, optimizer=optimizer, **estimate_kw)
    meas = None
    if measure:
        if est.optimizer == "newton":
            raise ValueError("report(measure=True): Newton's method is estimated only (an exact Hessian is P x P)")
        rng = np.random.default_rng(seed)
        if x is None:
            x = rng.standard_normal((batch_size, *(input_shape or (est.sizes[0],)))).astype(est.dtype)
        if y is None:
            y = rng.integers(0, est.sizes[-1], size=len(x))
        loss_fn = cross_entropy if loss_fn is None else loss_fn
        opt = default_optimizer(model, est.optimizer) if isinstance(optimizer, str) else optimizer
        meas = _measure(model, x, y, loss_fn, opt)
    out = text(est, meas)
    if verbose:
        print(out)
    return Report(est, meas, out)


def _cells(est: Estimate, meas: Measurement | None) -> tuple[list[str], list[list[str]], list[str]]:
    """The comparison table's header and cells, and a sentence for every gap larger than 10%."""
    rows = comparison_rows(est, meas)
    head = ["quantity", "lecture", "estimate"] + (["measured", "meas/est"] if meas else ["est/lecture"])
    cells, gaps = [], []
    for label, unit, lec, e, m, why in rows:
        why_lec, why_meas = why if isinstance(why, tuple) else (why, "the estimate's model of this line is off")
        if meas is None:
            r = _ratio(lec, e)
            cells.append([f"{label} ({unit})", _cell(lec, unit), _cell(e, unit), "-" if r is None else f"{r:.2f}"])
        else:
            r = _ratio(e, m)
            cells.append([f"{label} ({unit})", _cell(lec, unit), _cell(e, unit), _cell(m, unit),
                         "-" if r is None else f"{r:.2f}"])
        rl = _ratio(lec, e)
        if why_lec and rl is not None and abs(rl - 1) > 0.1:
            gaps.append(f"  {label}: estimate/lecture = {'(lecture: 0)' if rl == math.inf else f'{rl:.2f}'}: {why_lec}")
        if meas is not None and e and (m is None or (r is not None and abs(r - 1) > 0.1)):
            gaps.append(f"  {label}: measured/estimate = {'-' if r is None else f'{r:.2f}'}: {why_meas}")
    return head, cells, gaps


def _title(est: Estimate) -> str:
    return (f"chainrule cost: {' -> '.join(map(str, est.sizes))}, batch {est.batch_size}, {est.dtype}, "
            f"optimizer {est.optimizer} (MACs = multiply-adds, FLOPs = 2 per MAC + elementwise; bytes in KiB/MiB)")


def _notes(est: Estimate, meas: Measurement | None, gaps: list[str]) -> list[str]:
    """The lines under the table: backward/forward ratio and timings (measured), gaps, the lecture's formulas."""
    out = []
    if meas is not None:
        fw, bw = meas.flops.get("forward", {}), meas.flops.get("backward", {})
        ratio = bw.get("flops", 0) / max(fw.get("flops", 1), 1)
        ec = est.compute
        out.append(f"backward/forward FLOPs: estimate {ec['backward_flops'] / ec['forward_flops']:.2f}, measured "
                   f"{ratio:.2f} (the lecture's 2)")
        out.append("wall time (instrumented): " + ", ".join(f"{k} {1e3 * v:.2f} ms" for k, v in meas.seconds.items()))
    if gaps:
        out += ["Gaps larger than 10%:", *gaps]
    return out + ["", *lecture.lines(est)]


def text(est: Estimate, meas: Measurement | None) -> str:
    """The report as text: the comparison table, the gaps explained, the lecture's formulas."""
    head, cells, gaps = _cells(est, meas)
    return "\n".join([_title(est), grid(head, cells), *_notes(est, meas, gaps)])


def html(est: Estimate, meas: Measurement | None) -> str:
    """The report as HTML (Jupyter): the comparison as a table, the notes and formulas as text."""
    head, cells, gaps = _cells(est, meas)
    return html_table(head, cells, caption=_title(est)) + html_pre("\n".join(_notes(est, meas, gaps)).strip("\n"))


