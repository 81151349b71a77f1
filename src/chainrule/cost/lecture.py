"""The lecture's street-fighting math with a network's numbers plugged in, then the full figures.

For a ``D x 2D`` network trained on batches of ``B`` examples the lecture gives: parameters
``D x 2D``; inference memory ``D x 2D + B x 2D``; training memory ``D x 2D + 2 x D x 2D`` (Adam's
``m`` and ``v``) ``+ B x D + B x 2D``; inference compute ``B x D x 2D`` multiply-adds; training
compute ``B x D x 2D + 2 x B x D x 2D``. Other shapes use the general forms (sums over layers).
"""

from __future__ import annotations

from typing import Any

from .._text import human_bytes


def _n(x: int) -> str:
    return f"{x:,}"


def _formulas(s: list[int], B: int) -> tuple[str, ...]:
    """(weights, biggest activation, all activations, forward) as formulas and with numbers."""
    if len(s) == 2 and s[1] == 2 * s[0]:
        D = s[0]
        return ("D x 2D", f"{D} x {2 * D}", "B x 2D", f"{B} x {2 * D}", "B x D + B x 2D", f"{B} x {D} + {B} x {2 * D}",
                "B x D x 2D", f"{B} x {D} x {2 * D}")
    w_n = " + ".join(f"{a} x {b}" for a, b in zip(s[:-1], s[1:]))
    return ("sum of in x out", w_n, "B x max width", f"{B} x {max(s[1:])}", "B x sum of widths",
            f"{B} x ({' + '.join(map(str, s))})", "B x sum of in x out", f"{B} x ({w_n})")


def lines(est: Any) -> list[str]:
    """The lecture's formulas for ``est`` (an :class:`~chainrule.cost.Estimate`), then the full estimate."""
    s, B, isz = est.sizes, est.batch_size, est.dtype.itemsize
    lec = est.lecture
    w_f, w_n, act_f, act_n, all_f, all_n, fw_f, fw_n = _formulas(s, B)
    k = est.state_per_param
    st_f = f"({w_f})^2 (exact Hessian)" if k < 0 else f"{k} x {w_f}"
    st = lec["training_memory"] - lec["parameters"] - B * sum(s)
    out = [f"The lecture's street-fighting math (numbers, not bytes; compute in multiply-adds), {est.optimizer}:",
           f"  Parameters:          {w_f} = {w_n} = {_n(lec['parameters'])}",
           f"  Memory (inference):  {w_f} (parameters) + {act_f} (biggest activation)"
           f" = {_n(lec['parameters'])} + {act_n} = {_n(lec['inference_memory'])}"
           f"  ({human_bytes(lec['inference_memory'] * isz)} at {est.dtype})",
           f"  Memory (training):   {w_f} (parameters) + {st_f} (optimizer state) + {all_f} (all activations)"
           f" = {_n(lec['parameters'])} + {_n(st)} + {all_n} = {_n(lec['training_memory'])}"
           f"  ({human_bytes(lec['training_memory'] * isz)})",
           f"  Compute (inference): {fw_f} (forward pass) = {fw_n} = {_n(lec['inference_compute'])} multiply-adds"
           f" = {_n(2 * lec['inference_compute'])} FLOPs",
           f"  Compute (training):  {fw_f} (forward) + 2 x {fw_f} (backward: gradients for weights and inputs)"
           f" = {_n(lec['training_compute'])} multiply-adds = {_n(2 * lec['training_compute'])} FLOPs",
           ""]
    return out + _full_lines(est)


def _full_lines(est: Any) -> list[str]:
    s, B, isz = est.sizes, est.batch_size, est.dtype.itemsize
    lec, m, c = est.lecture, est.memory, est.compute
    P = est.parameters
    unfused = any(lc.saved for lc in est.layers if lc.kind not in ("linear", "loss"))
    out = ["The full estimate, and how it differs from the lecture's:",
           f"  Parameters:          {_n(P)} (the lecture ignores the {_n(P - lec['parameters'])} biases)",
           f"  Memory (inference):  {human_bytes(m['inference_total'])} = parameters {human_bytes(m['parameters'])}"
           f" + input batch {human_bytes(m['input'])} + the largest op's input and output held together"
           f" {human_bytes(m['inference_activations'] - m['input'])} (the lecture counts one activation, no input)",
           f"  Memory (training):   {human_bytes(m['training_total'])} = parameters {human_bytes(m['parameters'])}"
           f" + gradients {human_bytes(m['gradients_at_peak'])} (the lecture has none; one number per parameter)"
           f" + optimizer state {human_bytes(m['optimizer_state'])} + scratch {human_bytes(m['optimizer_scratch'])}"
           f" + activations still saved at the peak {human_bytes(m['activations_at_peak'])} (of"
           f" {human_bytes(m['activations'])} saved by the forward pass: the lecture's {human_bytes(B * sum(s) * isz)},"
           + (" plus each unfused activation's input," if unfused else "")
           + " plus softmax(z) and the labels; backward frees them layer by layer)"
           f" + backward temporaries {human_bytes(m['temporaries'])}",
           f"  Compute (inference): {_n(c['inference_flops'])} FLOPs (2 per multiply-add, plus bias and activation"
           " elementwise work)",
           f"  Compute (training):  forward {_n(c['forward_flops'])} + backward {_n(c['backward_flops'])}"
           f" + optimizer step {_n(c['step_flops'])} = {_n(c['training_flops'])} FLOPs"]
    skipped = est.layers[0].forward_macs - est.layers[0].backward_input_macs if not est.input_requires_grad else 0
    if skipped:
        out.append(f"  Backward is not exactly 2x forward: the first layer's input gradient ({_n(skipped)}"
                   " multiply-adds) is not needed, so the engine never computes it.")
    return out
