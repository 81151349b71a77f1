"""``einsum``, a primitive whose gradient is an einsum too.

For ``out = einsum("ij,jk->ik", A, B)``, the gradient of operand ``i`` contracts ``g`` with the other
operands onto operand ``i``'s subscripts: ``dA = einsum("ik,jk->ij", g, B)``. A subscript of operand
``i`` that appears nowhere else was summed away; its gradient is broadcast back along that axis.
Repeated subscripts within one operand (a trace, a diagonal) and ``...`` run forward only.
"""

from __future__ import annotations

import numpy as np

from .ops import broadcast_to, reshape
from .primitive import Primitive

__all__ = ["einsum"]


def _split(equation: str, n: int) -> tuple[list[str], str]:
    eq = equation.replace(" ", "")
    lhs, arrow, out = eq.partition("->")
    ins = lhs.split(",")
    if len(ins) != n:
        raise ValueError(f"einsum: the equation {equation!r} names {len(ins)} operands, but {n} were given")
    if not arrow:  # implicit output: the subscripts that appear once, in alphabetical order (NumPy's and torch's rule)
        out = "".join(sorted(c for c in set(lhs) if c.isalpha() and lhs.count(c) == 1))
    return ins, out


def _einsum(*operands, equation: str = ""):
    _split(equation, len(operands))
    try:
        return np.einsum(equation, *operands, optimize=len(operands) > 2)
    except ValueError as e:
        raise ValueError(f"einsum: {e} (equation {equation!r}, shapes {[np.shape(x) for x in operands]})") from None


def _flops(out, *xs, equation=""):
    ins, o = _split(equation, len(xs))
    sizes = {c: n for sub, x in zip(ins, xs) for c, n in zip(sub, np.shape(x))}
    return 2 * int(np.prod([sizes[c] for c in set("".join(ins)) if c in sizes], dtype=np.int64))


einsum = Primitive("einsum", _einsum, "*tensors", flops=_flops, doc="Einstein summation, as ``torch.einsum``.")


@einsum.defgrad
def _einsum_grad(g, out, *xs, equation=""):
    ins, o = _split(equation, len(xs))
    if "." in equation or any(len(set(s)) != len(s) for s in ins):
        raise ValueError(f"einsum: no gradient for {equation!r} (a repeated subscript or '...'); "
                         "write the trace or diagonal with indexing instead")
    grads = []
    for i, (sub, x) in enumerate(zip(ins, xs)):
        rest = [s for j, s in enumerate(ins) if j != i]
        kept = "".join(c for c in sub if c in o or any(c in s for s in rest))
        gi = einsum(g, *[y for j, y in enumerate(xs) if j != i], equation=",".join([o, *rest]) + "->" + kept)
        if kept != sub:  # subscripts summed away in the forward: broadcast the gradient back along them
            gi = broadcast_to(reshape(gi, shape=tuple(n if c in kept else 1 for c, n in zip(sub, x.shape))),
                              shape=x.shape)
        grads.append(gi)
    return tuple(grads)
