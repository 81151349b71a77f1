"""Peers that need a build step of their own: hand-written NumPy (the limit for a NumPy library),
``jax.jit`` of the whole training step with optax, ``torch.compile`` of the model and of the whole step,
and chainrule's own compiled replay (``chainrule.compile``, a column that fills in once it has landed).

Each peer is built from a workload's ``(sizes, arrays, xs, ys, optimizer, lr, loss)`` (``Workload.spec``;
``loss`` one of ``workloads.LOSSES``, cross-entropy by default) and expresses that loss in its own library.
It is an object with ``step()`` (one training step on the next batch of its pool, returns the
loss), ``reset()`` (initial weights, fresh optimizer state, first batch again; a compiled function is
kept where the library allows it, so a reset costs no recompilation) and ``params()`` (NumPy arrays in
chainrule's (out, in) layout). ``bench/run.py`` times the first call of each (trace/compile time),
checks its parameters after 3 steps (:class:`Reference`), then times it. Nothing here measures time.

**The numeric check, and why it is not "allclose to torch eager in float32".** That check (atol a tenth
of one Adam step) failed at batch 1024 for jax.jit, torch.compile(step) *and* hand NumPy, and torch eager
float32 itself is as far from the exact step: after 3 steps its parameters are up to 2.7 Adam steps
(2.7 lr) away from the same step run in float64. The cause is float32 rounding at ReLU's kink: among
the 1024 x 512 pre-activations of a layer, one or two lie within rounding of 0, and each library's
summation order (MKL's blocked sgemm, XLA's dot, OpenBLAS) puts a different one on the other side
(at batch 1024, the first batch and the initial weights, in one run: torch one in layer 1, XLA one in
layer 2, NumPy none; which ones depends on the kernel and the thread count). Each flip adds a rank-one
term to a weight gradient (relative gradient error ~1e-3), and Adam's scale-free ``m / sqrt(v)`` turns
that into a difference of up to ``lr`` per step on every entry it touches. In float64 every peer equals
torch eager's step to ~1e-14 (optax's Adam included: its ``eps`` is outside the square root, as torch's,
with ``eps_root=0``), so the steps are the same math. (One exception, found by this check:
``torch.compile(step)`` computes Adam's bias corrections ``1 - beta^t`` from the optimizer's float32
step counter, where eager reads it as a Python float: a relative difference of ~6e-6 in the step size,
the same work. So the float64 runs keep torch's scalars in float64 too (``torch.set_default_dtype``),
under which it equals eager to ~1e-17; its float32 run, the one timed, keeps the float32 counter.)
Hence two tests against torch eager *in float64* (the exact step), both on :func:`update_error` (the
distance of the parameters after 3 steps, relative to how far the exact step moved them):

- the peer's float64 run within :data:`F64_LIMIT`: the same step. Deliberately wrong hand-NumPy steps
  at batch 128 were off by 3 (no bias correction), 1 (twice the learning rate), 0.2 (``eps`` inside the
  square root) and 0.003 (``beta2`` 0.99 instead of 0.999);
- the peer's float32 run (the one timed) within :data:`F32_LIMIT`: loose enough for kink flips
  (measured up to 0.03: jax.jit at batch 1024), below the larger real differences above (the small
  ones only the float64 run can see). torch eager float32's own distance is printed next to it.

chainrule's compiled replay is also compared bit for bit with chainrule eager (the replay's promise).
"""

from __future__ import annotations

import contextlib

import numpy as np
from workloads import HINGE_ALPHA

B1, B2, EPS = 0.9, 0.999, 1e-8  # Adam's defaults in torch and optax alike
#: Largest :func:`update_error` of a peer's float64 run against torch eager float64: float64 rounding
#: (measured ~1e-14) with room to spare, far below any real difference in the step.
F64_LIMIT = 1e-9
#: Largest :func:`update_error` of a peer's float32 run against torch eager float64 (see the module docstring).
F32_LIMIT = 0.1


class _Pool:
    def __init__(self, xs, ys):
        self.xs, self.ys, self.i = xs, ys, 0

    def next(self):
        i = self.i
        self.i = (i + 1) % len(self.xs)
        return self.xs[i], self.ys[i]


class NumpyStep(_Pool):
    """Forward, backward and update written out in NumPy, in place where NumPy allows: softmax cross
    entropy's gradient ``(softmax(z) - onehot(y)) / n``, or the hinge's ``-y [1 - y s > 0] / n`` with its
    L2 term's ``2 alpha p`` folded into the update (and, with SGD, the learning rate into that seed: the
    backward is linear in it, so it yields ``lr dL/dp`` directly); ``dW = G^T h``, ``dh = (G W) * [h > 0]``;
    SGD, or Adam as torch's: ``p -= lr / (1 - b1^t) * m / (sqrt(v) / sqrt(1 - b2^t) + eps)``."""

    def __init__(self, sizes, arrays, xs, ys, optimizer, lr, loss="cross_entropy"):
        super().__init__(xs, ys)
        self.arrays, self.optimizer, self.lr = arrays, optimizer, lr
        self.head = {"cross_entropy": self._cross_entropy, "hinge_l2": self._hinge_l2}[loss]
        self.decay = 2 * HINGE_ALPHA if loss == "hinge_l2" else 0.0  # d(alpha p^2)/dp = 2 alpha p
        self.seed = lr if loss == "hinge_l2" and optimizer == "SGD" else 1.0  # the backward's seed scale
        self.reset()

    def reset(self):
        self.p = [a.copy() for a in self.arrays]
        self.m = [np.zeros_like(a) for a in self.arrays]
        self.v = [np.zeros_like(a) for a in self.arrays]
        self.t, self.i = 0, 0

    def params(self):
        return self.p

    def step(self):
        x, y = self.next()
        p, layers = self.p, len(self.p) // 2
        hs = [x]
        for i in range(layers):
            z = hs[-1] @ p[2 * i].T
            z += p[2 * i + 1]
            if i < layers - 1:
                np.maximum(z, 0, out=z)
            hs.append(z)
        g, loss = self.head(hs.pop(), y)
        grads = [None] * len(p)
        for i in reversed(range(layers)):
            h = hs[i]
            grads[2 * i], grads[2 * i + 1] = g.T @ h, g.sum(axis=0)
            if i:
                g = g @ p[2 * i]
                g *= h > 0
        self._update(grads)
        return loss

    @staticmethod
    def _cross_entropy(z, y):
        """Mean softmax cross-entropy of logits ``z`` (overwritten) and its gradient in z."""
        n = len(z)
        z -= z.max(axis=1, keepdims=True)
        np.exp(z, out=z)
        s = z.sum(axis=1, keepdims=True)
        rows = np.arange(n)
        loss = float(np.mean(np.log(s[:, 0]) - np.log(z[rows, y])))
        z /= s
        z[rows, y] -= 1
        z /= n
        return z, loss

    def _hinge_l2(self, s, y):
        """``mean relu(1 - y s) + alpha sum p^2`` and its gradient in the scores ``s`` (the L2 term's
        gradient is the update's: :meth:`_update`)."""
        m = y * s
        np.subtract(1, m, out=m)
        g = (m > 0) * y
        g *= -self.seed / len(s)
        np.maximum(m, 0, out=m)
        loss = float(m.sum()) / len(s) + HINGE_ALPHA * sum(float(np.vdot(p, p)) for p in self.p)
        return g, loss

    def _update(self, grads):
        if self.optimizer == "SGD":
            for p, g in zip(self.p, grads):
                if self.decay:  # p - lr (g + 2 alpha p)
                    p *= 1 - self.lr * self.decay
                if self.seed != 1.0:  # g is lr dL/dp already
                    p -= g
                else:
                    p -= self.lr * g
            return
        self.t += 1
        step, root = self.lr / (1 - B1 ** self.t), np.sqrt(1 - B2 ** self.t)
        for p, g, m, v in zip(self.p, grads, self.m, self.v):
            if self.decay:
                g += self.decay * p
            m *= B1
            m += (1 - B1) * g
            v *= B2
            g *= g
            v += (1 - B2) * g
            d = np.sqrt(v)
            d /= root
            d += EPS
            np.divide(m, d, out=d)
            d *= step
            p -= d


class JaxStep(_Pool):
    """``jax.jit`` of loss, gradient and the optax update as one function (XLA compiles it at the first call)."""

    def __init__(self, sizes, arrays, xs, ys, optimizer, lr, loss="cross_entropy"):
        import jax
        import jax.numpy as jnp
        import optax
        super().__init__([jnp.asarray(x) for x in xs],
                         [jnp.asarray(y.astype(np.int32) if y.dtype.kind in "iu" else y) for y in ys])
        self.arrays = arrays
        self.opt = optax.adam(lr, b1=B1, b2=B2, eps=EPS) if optimizer == "Adam" else optax.sgd(lr)
        objective = {  # (scores, y, params) -> loss
            "cross_entropy": lambda h, y, params: optax.softmax_cross_entropy_with_integer_labels(h, y).mean(),
            "hinge_l2": lambda h, y, params: (jnp.mean(jax.nn.relu(1 - y * h))
                                              + HINGE_ALPHA * sum(jnp.sum(p * p) for p in params)),
        }[loss]

        def loss_fn(params, x, y):
            h = x
            for i in range(0, len(params), 2):
                h = h @ params[i].T + params[i + 1]
                if i + 2 < len(params):
                    h = jax.nn.relu(h)
            return objective(h, y, params)

        def train(params, state, x, y):
            loss, g = jax.value_and_grad(loss_fn)(params, x, y)
            updates, state = self.opt.update(g, state, params)
            return optax.apply_updates(params, updates), state, loss
        self.train = jax.jit(train)
        self.reset()

    def reset(self):
        import jax.numpy as jnp
        self.p = [jnp.asarray(a) for a in self.arrays]
        self.state, self.i = self.opt.init(self.p), 0

    def params(self):
        return [np.asarray(a) for a in self.p]

    def step(self):
        x, y = self.next()
        self.p, self.state, loss = self.train(self.p, self.state, x, y)
        return loss.block_until_ready()


class TorchStep(_Pool):
    """PyTorch: ``mode`` 'eager', 'model' (``torch.compile(model)``, eager optimizer) or 'step'
    (``torch.compile`` of forward, backward, ``opt.step()`` and ``zero_grad`` together: dynamo breaks the
    graph at ``backward()`` and compiles the pieces on either side, the optimizer step included)."""

    def __init__(self, sizes, arrays, xs, ys, optimizer, lr, loss="cross_entropy", mode="eager"):
        import torch
        from workloads import loss_fn, torch_mlp
        super().__init__([torch.from_numpy(x) for x in xs], [torch.from_numpy(y) for y in ys])
        self.torch, self.arrays = torch, arrays
        self.model = torch_mlp(sizes, arrays).to(torch.from_numpy(arrays[0]).dtype)  # float64 for the exact check
        params, objective = list(self.model.parameters()), loss_fn("torch", loss)
        self.opt = getattr(torch.optim, optimizer)(params, lr=lr)
        model = torch.compile(self.model) if mode == "model" else self.model

        def train(x, y):
            loss = objective(model(x), y, params)
            loss.backward()
            self.opt.step()
            self.opt.zero_grad()
            return loss
        self.train = torch.compile(train) if mode == "step" else train
        self.i = 0

    def reset(self):
        # in place, so the compiled code's guards (on these very tensors) still hold: no recompilation
        with self.torch.no_grad():
            for p, a in zip(self.model.parameters(), self.arrays):
                p.copy_(self.torch.from_numpy(a))
                p.grad = None
                for s in self.opt.state.get(p, {}).values():
                    if isinstance(s, self.torch.Tensor):
                        s.zero_()
        self.i = 0

    def params(self):
        return [p.detach().numpy().copy() for p in self.model.parameters()]

    def step(self):
        return self.train(*self.next())


class Missing(Exception):
    """A peer that cannot be built here, with the one-line reason (shown as a pending row)."""


class ChainruleStep(_Pool):
    """chainrule's step (``workloads.cr_step_body``: the one the "chainrule" row times), called eagerly or,
    with ``compiled=True``, through ``chainrule.compile(body)``: recorded at its first call, replayed after.
    ``reset`` rebuilds model, optimizer and compiled function (no in-place reset to rely on); the
    replay records again at its next call, which bench/run.py makes untimed."""

    def __init__(self, sizes, arrays, xs, ys, optimizer, lr, loss="cross_entropy", compiled=False):
        import chainrule as cr
        if compiled and not hasattr(cr, "compile"):
            raise Missing("chainrule.compile has not landed yet: this column fills in when it does")
        super().__init__([cr.tensor(x, dtype=x.dtype) for x in xs], [cr.tensor(y, dtype=y.dtype) for y in ys])
        self.cr, self.spec, self.compiled = cr, (sizes, arrays, optimizer, lr, loss), compiled
        self.reset()

    def reset(self):
        from workloads import cr_step_body
        body, self._params, _ = cr_step_body(*self.spec)
        self.train = self.cr.compile(body) if self.compiled else body
        self.i = 0

    def params(self):
        return [p.numpy() for p in self._params]

    def step(self):
        return self.train(*self.next())


PEERS = {  # contender name -> (lib, how, constructor)
    "hand NumPy": ("numpy", "forward, backward and update written out in NumPy", NumpyStep),
    "jax.jit": ("jax", "jax.jit of the whole step, optax", JaxStep),
    "torch.compile model": ("torch", "torch.compile(model), eager optimizer",
                            lambda *a: TorchStep(*a, mode="model")),
    "torch.compile step": ("torch", "torch.compile of forward+backward+opt.step",
                           lambda *a: TorchStep(*a, mode="step")),
    "chainrule compiled": ("chainrule", "chainrule.compile(step body), replayed",
                           lambda *a: ChainruleStep(*a, compiled=True)),
}


def cast(args: tuple, dtype) -> tuple:
    """A workload's peer arguments ``(sizes, arrays, xs, ys, optimizer, lr[, loss])`` with weights, inputs and
    real-valued targets (the hinge's -1/+1) in ``dtype``; class labels stay integers."""
    sizes, arrays, xs, ys, *rest = args
    ys = [y if y.dtype.kind in "iu" else y.astype(dtype) for y in ys]
    return sizes, [a.astype(dtype) for a in arrays], [x.astype(dtype) for x in xs], ys, *rest


@contextlib.contextmanager
def float64_context(lib: str):
    """What a peer needs to run entirely in float64: jax computes in float32 unless x64 is on; torch keeps
    its optimizers' step counters in the default dtype (see the module docstring). Only inside this block."""
    if lib == "jax":
        import jax
        with jax.enable_x64(True):
            yield
    elif lib == "torch":
        import torch
        previous = torch.get_default_dtype()
        torch.set_default_dtype(torch.float64)
        try:
            yield
        finally:
            torch.set_default_dtype(previous)
    else:
        yield


def run_steps(peer, steps: int = 3) -> list[np.ndarray]:
    """Reset, ``steps`` steps on the pool's first batches, the parameters as float64 arrays; reset again."""
    peer.reset()
    for _ in range(steps):
        peer.step()
    out = [np.array(p, dtype=np.float64) for p in peer.params()]
    peer.reset()
    return out


def update_error(got: list, want: list, init: list) -> float:
    """``||got - want|| / ||want - init||`` over all parameters: how far two runs' parameters after the
    same steps are apart, relative to how far the reference run moved them from ``init``."""
    num = sum(float(np.sum((np.asarray(g, np.float64) - w) ** 2)) for g, w in zip(got, want))
    den = sum(float(np.sum((w - np.asarray(i, np.float64)) ** 2)) for w, i in zip(want, init))
    return float(np.sqrt(num / den)) if den > 0 else float("inf")


class Reference:
    """torch eager run in float64 from the workload's (float32) weights and data: the exact step the
    peers are checked against; ``e32`` is torch eager float32's own :func:`update_error` to it."""

    def __init__(self, args: tuple, steps: int = 3):
        self.args, self.steps = args, steps
        self.init = [np.asarray(a, np.float64) for a in args[1]]
        with float64_context("torch"):
            self.exact = run_steps(TorchStep(*cast(args, np.float64)), steps)
        self.e32 = update_error(run_steps(TorchStep(*args), steps), self.exact, self.init)

    def check(self, name: str, lib: str, make, peer=None) -> tuple[bool, str]:
        """``peer`` (built by ``make(*args)`` if not given) in float32 and a fresh one in float64 against
        the exact step: (both within their limits, one line saying so)."""
        e32 = update_error(run_steps(peer if peer is not None else make(*self.args), self.steps), self.exact, self.init)
        with float64_context(lib):
            e64 = update_error(run_steps(make(*cast(self.args, np.float64)), self.steps), self.exact, self.init)
        ok = e32 <= F32_LIMIT and e64 <= F64_LIMIT
        return ok, (f"{name}: after {self.steps} steps, |params - exact| / |exact update| = {e32:.2g} in float32 "
                    f"(torch eager float32: {self.e32:.2g}), {e64:.1g} in float64 ({'ok' if ok else 'MISMATCH'}: "
                    f"limits {F32_LIMIT:g} and {F64_LIMIT:g}; exact = torch eager in float64)")


def unavailable(name: str, exc: BaseException) -> str:
    """The one-line reason a peer cannot run here."""
    if isinstance(exc, Missing):
        return str(exc)
    if isinstance(exc, ImportError):
        return f"{exc.name or exc} not installed (pip install -e '.[bench]')"
    first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return f"{name} failed here: {type(exc).__name__}: {first[:200]}"


def bit_identical(peer, args: tuple, steps: int = 3) -> bool:
    """chainrule's compiled replay against chainrule eager: the same parameters, bit for bit, after ``steps``."""
    return all(np.array_equal(a, b) for a, b in zip(run_steps(peer, steps), run_steps(ChainruleStep(*args), steps)))


def add_peers(w, skip=()) -> None:
    """Append the peers of PEERS to a training-step workload (``w.spec``): each is built, its first call
    timed (``Contender.first``), its parameters after 3 steps checked (:class:`Reference`; the line goes
    to ``w.checks``), then reset for timing. A peer that cannot run here (or is in ``skip``, name ->
    reason) is a pending row with the reason."""
    import time

    from workloads import Contender
    sizes, arrays, xs, ys, optimizer, lr, loss = w.spec
    args = (sizes, arrays, *((xs, ys) if isinstance(xs, list) else ([xs], [ys])), optimizer, lr, loss)
    reference = Reference(args)
    for name, (lib, how, make) in PEERS.items():
        if name in skip:
            w.contenders.append(Contender(name, lib, None, pending=skip[name], note=how))
            continue
        try:
            peer = make(*args)
            t0 = time.perf_counter()
            peer.step()
            first = time.perf_counter() - t0
            ok, line = reference.check(name, lib, make, peer)
            if name == "chainrule compiled":
                line += "; bit-identical to chainrule eager: " + ("yes" if bit_identical(peer, args) else "NO")
        except Exception as e:  # noqa: BLE001 - any failure of a peer is reported, never fatal
            w.contenders.append(Contender(name, lib, None, pending=unavailable(name, e), note=how))
            continue
        w.checks.append(line)
        w.contenders.append(Contender(name, lib, peer.step, note=how, first=first,
                                      factory=lambda p=peer: (p.reset(), p.step)[1]))
