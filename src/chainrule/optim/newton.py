"""Newton's method (lecture, Concept #1: "don't just use the slope, use the curvature").

In one dimension the lecture minimises the second-order Taylor model and gets
``theta = theta - f'(theta) / f''(theta)``. In P dimensions ``f''`` is the Hessian ``H`` (P x P)
and the division is a linear solve::

    g = grad f(theta)
    H = hessian f(theta)                      (double backward)
    d = -(H + damping I)^-1 g
    theta = theta + lr * d

Small models (P <= ``exact_max_params``) form H exactly, one Hessian row per backward pass through
the gradient's graph, and solve with LAPACK: P^2 memory, P^3 flops. Larger models never form H:
Hessian-free Newton-CG solves the same system by conjugate gradient, touching H only through
Hessian-vector products ``H v = grad(g . v)`` (about one extra backward pass each).
"""

from __future__ import annotations

import math
import warnings

import numpy as np

from .. import ops as _ops
from .._text import human_bytes
from ..autograd import _stamp, enable_grad, grad, no_grad
from ..tensor import Tensor
from .optimizer import Optimizer, _fmt, check_range

_WARN_ABOVE = 2000  # an exact Hessian above this many parameters gets a cost warning


def _human_count(n: float) -> str:
    for unit, scale in (("quadrillion", 1e15), ("trillion", 1e12), ("billion", 1e9), ("million", 1e6), ("thousand", 1e3)):
        if n >= scale:
            return f"{n / scale:.3g} {unit}"
    return f"{n:.3g}"


def hessian_cost(P: int) -> str:  # noqa: N803
    """What an exact Hessian of P parameters costs, in human units."""
    return (f"an exact Hessian of P = {P:,} parameters holds P^2 = {_human_count(P * P)} floats "
            f"({human_bytes(8.0 * P * P)} in float64), takes P = {P:,} backward passes to build and "
            f"~P^3 = {_human_count(float(P) ** 3)} flops to solve, every step")


class Newton(Optimizer):
    r"""Newton's method: ``theta = theta - lr * (H + damping I)^-1 grad f(theta)``.

    ``step(closure)`` needs a closure that re-evaluates the model and *returns the loss*: Newton
    differentiates the loss twice itself. A PyTorch-style closure that also calls
    ``loss.backward(retain_graph=True)`` works too (plain ``backward()`` frees the graph Newton
    needs: a ValueError says so). The closure is also what the line search evaluates. The gradient
    at the starting point is left in each ``p.grad``.

    Arguments:
        lr: step length along the Newton direction (1 is the pure Newton step; with
            ``line_search`` it is the first length tried).
        damping: Levenberg-style ``H + damping I``. Needed when the loss is not convex (H has
            negative eigenvalues and the plain Newton step climbs towards a maximum or saddle):
            a large damping turns the step into gradient descent with ``lr / damping``.
        line_search: backtracking (Armijo) line search: halve the step until
            ``f(theta + t d) <= f(theta) + 1e-4 t g.d``. If ``d`` is not a descent direction
            (``g.d >= 0``) the search uses ``d = -g``.
        max_cg_iter: conjugate-gradient iterations for Newton-CG (default: P).
        exact_max_params: form the exact Hessian when the parameter count is at most this;
            above it, Hessian-free Newton-CG. An exact Hessian above 2,000 parameters warns with
            its cost.
        cg_tol: Newton-CG stops when the residual ``||(H + damping I) d + g||`` falls below
            ``cg_tol * ||g||``.

    All parameters are coupled through H, so every parameter group must use the same
    hyperparameters.
    """

    def __init__(self, params, lr: float = 1.0, damping: float = 0.0, line_search: bool = False,
                 max_cg_iter: int | None = None, exact_max_params: int = 2000, *, cg_tol: float = 1e-10):
        defaults = dict(lr=lr, damping=damping, line_search=line_search, max_cg_iter=max_cg_iter,
                        exact_max_params=exact_max_params, cg_tol=cg_tol)
        super().__init__(params, defaults)

    def _validate(self, group):
        check_range("lr", group["lr"])
        check_range("damping", group["damping"])
        check_range("cg_tol", group["cg_tol"])
        check_range("exact_max_params", group["exact_max_params"])
        if group["max_cg_iter"] is not None:
            check_range("max_cg_iter", group["max_cg_iter"], 1)
        if self.param_groups:
            first = self.param_groups[0]
            diff = [k for k in self.defaults if group[k] != first[k]]
            if diff:
                raise ValueError(f"Newton couples all parameters through the Hessian, so every group needs the same "
                                 f"hyperparameters; this group differs in {diff}")
        P = sum(p._data.size for g in self.param_groups for p in g["params"]) + sum(p._data.size for p in group["params"])
        if _WARN_ABOVE < P <= group["exact_max_params"]:
            warnings.warn(f"Newton: {hessian_cost(P)}. Lower exact_max_params below {P:,} to use Hessian-free "
                          "Newton-CG, which never forms H.", stacklevel=5)

    # ----- the step ---------------------------------------------------------------------------
    def step(self, closure=None):
        """One Newton step; returns the loss at the starting point."""
        if closure is None:
            raise ValueError("Newton.step needs a closure that re-evaluates the model and returns the loss, e.g. "
                             "opt.step(lambda: loss_fn(model(x), y)); it is differentiated twice, so it must not "
                             "call backward()")
        group = self.param_groups[0]
        params = [p for g in self.param_groups for p in g["params"] if p.requires_grad]  # frozen ones stay put
        marks = [p.grad for p in params]
        with enable_grad():
            loss = closure()
        # A PyTorch-style closure (zero_grad; loss.backward(); return loss) replaces the .grad objects.
        calls_backward = any(p.grad is not m for p, m in zip(params, marks))
        if not isinstance(loss, Tensor) or loss._data.size != 1:
            raise ValueError(f"Newton.step: the closure must return the scalar loss Tensor, got {type(loss).__name__}"
                             + (f" of shape {loss.shape}" if isinstance(loss, Tensor) else ""))
        if not loss.requires_grad:
            raise ValueError("Newton.step: the closure's loss does not depend on the parameters (requires_grad=False): "
                             "was it computed under no_grad(), or did the closure call backward()?")
        try:
            with enable_grad():
                gs = grad(loss, params, create_graph=True, allow_unused=True)
        except RuntimeError as e:
            if not calls_backward:
                raise
            raise ValueError("Newton.step: the closure called backward(), which freed the graph that Newton "
                             "differentiates twice: return the loss without backward(), or call "
                             f"loss.backward(retain_graph=True) ({e})") from None
        g = self._flat([None if gi is None else gi._data for gi in gs], params)
        for p, gi in zip(params, gs):
            p.grad = Tensor(np.zeros_like(p._data) if gi is None else np.array(gi._data, dtype=p.dtype))
        P, damping = g.size, group["damping"]
        state = self.state.setdefault(params[0], {"step": 0})
        if P <= group["exact_max_params"]:
            H = self._hessian(gs, params)
            H[np.diag_indices(P)] += damping
            try:
                d = -np.linalg.solve(H, g)
            except np.linalg.LinAlgError:  # singular: the minimum-norm least-squares step
                d = -np.linalg.lstsq(H, g, rcond=None)[0]
            state["cg_iters"] = 0
        else:
            d, state["cg_iters"] = self._cg(gs, params, g, damping, group)
        # The line search only needs loss values; a closure that calls backward() needs a graph for it,
        # and its gradients at the trial points must not replace the ones at the accepted point.
        newton_grads = [p.grad for p in params]
        with enable_grad() if calls_backward else no_grad():
            t = self._line_search(closure, params, float(loss._data), g, d, group) if group["line_search"] else group["lr"]
        with no_grad():
            self._move(params, d, t)
        for p, gi in zip(params, newton_grads):
            p.grad = gi
        state["step"] += 1
        state["t"] = t
        return loss

    # ----- pieces -----------------------------------------------------------------------------
    @staticmethod
    def _flat(arrays, params) -> np.ndarray:
        return np.concatenate([np.zeros(p._data.size) if a is None else np.asarray(a, np.float64).reshape(-1)
                               for a, p in zip(arrays, params)])

    @staticmethod
    def _split(v: np.ndarray, params) -> list[np.ndarray]:
        out, k = [], 0
        for p in params:
            out.append(v[k:k + p._data.size].reshape(p._data.shape).astype(p.dtype))
            k += p._data.size
        return out

    def _hessian(self, gs, params) -> np.ndarray:
        """H row by row: row i = grad(g_i) = d/dtheta (dg/dtheta_i), one backward pass each."""
        P = sum(p._data.size for p in params)
        H = np.zeros((P, P))
        row = 0
        for gj, p in zip(gs, params):
            for k in range(p._data.size):
                if gj is not None and gj.requires_grad:
                    e = np.zeros(p._data.size, p.dtype)
                    e[k] = 1
                    hs = grad(gj, params, grad_outputs=Tensor(e.reshape(p._data.shape)), retain_graph=True,
                              allow_unused=True)
                    H[row] = self._flat([None if h is None else h._data for h in hs], params)
                row += 1
        return (H + H.T) / 2  # symmetric up to rounding; make it exactly so for the solver

    def _hv(self, gs, params, v: np.ndarray) -> np.ndarray:
        """Hessian-vector product H v = grad(g . v), through the retained graph of g."""
        dot = None
        for gj, vj in zip(gs, self._split(v, params)):
            if gj is not None and gj.requires_grad:
                term = _ops.sum(gj * vj)
                dot = term if dot is None else dot + term
        if dot is None:
            return np.zeros_like(v)
        hs = grad(dot, params, retain_graph=True, allow_unused=True)
        return self._flat([None if h is None else h._data for h in hs], params)

    def _cg(self, gs, params, g, damping, group):
        """Solve (H + damping I) d = -g by conjugate gradient (Nocedal & Wright, Alg. 5.2),
        stopping at negative curvature (then: the last iterate, or -g on the first iteration)."""
        d = np.zeros_like(g)
        r = -g                       # residual b - A d with b = -g, d = 0
        s = r.copy()                 # search direction
        rr = float(r @ r)
        tol = group["cg_tol"] * math.sqrt(rr)
        max_iter = group["max_cg_iter"] or g.size
        it = 0
        for it in range(1, max_iter + 1):
            As = self._hv(gs, params, s) + damping * s
            sAs = float(s @ As)
            if sAs <= 0:             # negative curvature: H + damping I is not positive definite
                if it == 1:
                    d = -g
                break
            alpha = rr / sAs
            d += alpha * s
            r -= alpha * As
            rr_new = float(r @ r)
            if math.sqrt(rr_new) <= tol:
                break
            s = r + (rr_new / rr) * s
            rr = rr_new
        return d, it

    def _line_search(self, closure, params, f0, g, d, group, c=1e-4, max_halvings=40) -> float:
        slope = float(g @ d)
        if not slope < 0:            # not a descent direction: fall back to steepest descent
            d[:] = -g
            slope = -float(g @ g)
        t = group["lr"]
        for _ in range(max_halvings):
            self._move(params, d, t)
            f = closure()
            f = float(f._data if isinstance(f, Tensor) else f)
            self._move(params, d, -t)
            if f <= f0 + c * t * slope:  # Armijo: enough decrease
                return t
            t *= 0.5
        return 0.0                   # no decrease found: stay put

    def _move(self, params, d, t):
        k = 0
        for p in params:
            n = p._data.size
            p._data += (t * d[k:k + n]).reshape(p._data.shape).astype(p.dtype)
            _stamp(p)  # an in-place update: graphs recorded before it must not backpropagate through it
            k += n

    def _equations(self, group):
        P = sum(p._data.size for g in self.param_groups for p in g["params"])
        exact = P <= group["exact_max_params"]
        lam = _fmt(group["damping"])
        eqs = ["g = grad f(theta)",
               f"H = hessian f(theta)                    (exact, P = {P:,})" if exact else
               f"H v = grad(g . v)                        (Hessian-free, P = {P:,})",
               f"d = -(H + {lam} I)^-1 g" + ("" if exact else
                                          f"                 (conjugate gradient, <= {group['max_cg_iter'] or P} iterations)")]
        if group["line_search"]:
            eqs += [f"t = {_fmt(group['lr'])}, halved until f(theta + t d) <= f(theta) + 1e-4 t g.d   (Armijo)",
                    "theta = theta + t * d"]
        else:
            eqs.append(f"theta = theta + {_fmt(group['lr'])} * d")
        return eqs
