"""Peers that need a build step of their own: hand-written NumPy (the limit for a NumPy library),
``jax.jit`` of the whole training step with optax, and ``torch.compile`` of the model and of the whole step.

Each peer is an object with ``step()`` (one training step on the next batch of its pool, returns the
loss), ``reset()`` (initial weights, fresh optimizer state, first batch again; the compiled function is
kept, so a reset costs no recompilation) and ``params()`` (NumPy arrays in chainrule's (out, in)
layout). ``bench/run.py`` times the first call of each (trace/compile time), checks its parameters
after 3 steps against PyTorch eager's, then times it. Nothing here measures time.
"""

from __future__ import annotations

import numpy as np

B1, B2, EPS = 0.9, 0.999, 1e-8  # Adam's defaults in torch and optax alike


class _Pool:
    def __init__(self, xs, ys):
        self.xs, self.ys, self.i = xs, ys, 0

    def next(self):
        i = self.i
        self.i = (i + 1) % len(self.xs)
        return self.xs[i], self.ys[i]


class NumpyStep(_Pool):
    """Forward, backward and update written out in NumPy, in place where NumPy allows: softmax cross
    entropy's gradient ``(softmax(z) - onehot(y)) / n``, ``dW = G^T h``, ``dh = (G W) * [h > 0]``; Adam as
    torch's: ``p -= lr / (1 - b1^t) * m / (sqrt(v) / sqrt(1 - b2^t) + eps)``."""

    def __init__(self, sizes, arrays, xs, ys, optimizer, lr):
        super().__init__(xs, ys)
        self.arrays, self.optimizer, self.lr = arrays, optimizer, lr
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
        p, n, layers = self.p, len(x), len(self.p) // 2
        hs = [x]
        for i in range(layers):
            z = hs[-1] @ p[2 * i].T
            z += p[2 * i + 1]
            if i < layers - 1:
                np.maximum(z, 0, out=z)
            hs.append(z)
        z = hs.pop()
        z -= z.max(axis=1, keepdims=True)
        np.exp(z, out=z)
        s = z.sum(axis=1, keepdims=True)
        rows = np.arange(n)
        loss = float(np.mean(np.log(s[:, 0]) - np.log(z[rows, y])))
        z /= s
        z[rows, y] -= 1
        z /= n
        g, grads = z, [None] * len(p)
        for i in reversed(range(layers)):
            h = hs[i]
            grads[2 * i], grads[2 * i + 1] = g.T @ h, g.sum(axis=0)
            if i:
                g = g @ p[2 * i]
                g *= h > 0
        self._update(grads)
        return loss

    def _update(self, grads):
        if self.optimizer == "SGD":
            for p, g in zip(self.p, grads):
                p -= self.lr * g
            return
        self.t += 1
        step, root = self.lr / (1 - B1 ** self.t), np.sqrt(1 - B2 ** self.t)
        for p, g, m, v in zip(self.p, grads, self.m, self.v):
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

    def __init__(self, sizes, arrays, xs, ys, optimizer, lr):
        import jax
        import jax.numpy as jnp
        import optax
        super().__init__([jnp.asarray(x) for x in xs], [jnp.asarray(y.astype(np.int32)) for y in ys])
        self.arrays = arrays
        self.opt = optax.adam(lr, b1=B1, b2=B2, eps=EPS) if optimizer == "Adam" else optax.sgd(lr)

        def loss_fn(params, x, y):
            h = x
            for i in range(0, len(params), 2):
                h = h @ params[i].T + params[i + 1]
                if i + 2 < len(params):
                    h = jax.nn.relu(h)
            return optax.softmax_cross_entropy_with_integer_labels(h, y).mean()

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

    def __init__(self, sizes, arrays, xs, ys, optimizer, lr, mode="eager"):
        import torch
        import torch.nn.functional as F
        from workloads import torch_mlp
        super().__init__([torch.from_numpy(x) for x in xs], [torch.from_numpy(y) for y in ys])
        self.torch, self.arrays = torch, arrays
        self.model = torch_mlp(sizes, arrays)
        self.opt = getattr(torch.optim, optimizer)(self.model.parameters(), lr=lr)
        model = torch.compile(self.model) if mode == "model" else self.model

        def train(x, y):
            loss = F.cross_entropy(model(x), y)
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


PEERS = {  # contender name -> (lib, how, constructor)
    "hand NumPy": ("numpy", "forward, backward and update written out in NumPy", NumpyStep),
    "jax.jit": ("jax", "jax.jit of the whole step, optax", JaxStep),
    "torch.compile model": ("torch", "torch.compile(model), eager optimizer",
                            lambda *a: TorchStep(*a, mode="model")),
    "torch.compile step": ("torch", "torch.compile of forward+backward+opt.step",
                           lambda *a: TorchStep(*a, mode="step")),
}


def check(peer, reference, steps: int = 3, rtol: float = 1e-4, atol: float = 1e-5) -> tuple[bool, float]:
    """Reset both, run ``steps`` steps on the same batches, compare the parameters: (all close, max |diff|)."""
    peer.reset()
    reference.reset()
    for _ in range(steps):
        peer.step()
        reference.step()
    got, want = peer.params(), reference.params()
    diff = max(float(np.max(np.abs(np.asarray(a, np.float64) - b))) for a, b in zip(got, want))
    ok = all(np.allclose(a, b, rtol=rtol, atol=atol) for a, b in zip(got, want))
    peer.reset()
    return ok, diff


def unavailable(name: str, exc: BaseException) -> str:
    """The one-line reason a peer cannot run here."""
    if isinstance(exc, ImportError):
        return f"{exc.name or exc} not installed (pip install -e '.[bench]')"
    first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return f"{name} failed here: {type(exc).__name__}: {first[:200]}"


def add_peers(w, skip=()) -> None:
    """Append the peers of PEERS to a training-step workload (``w.spec``): each is built, its first call
    timed (``Contender.first``), its parameters after 3 steps checked against torch eager's (the result
    goes to ``w.checks``), then reset for timing. A peer that cannot run here is a pending row with the reason."""
    import time

    from workloads import Contender
    sizes, arrays, xs, ys, optimizer, lr = w.spec
    args = (sizes, arrays, *((xs, ys) if isinstance(xs, list) else ([xs], [ys])), optimizer, lr)
    reference = TorchStep(*args)
    # Adam divides by sqrt(v): where a gradient is ~0 its rounding noise moves the update by up to ~lr,
    # so Adam's parameters agree to a fraction of one step, SGD's to float32 rounding.
    atol = 0.1 * lr if optimizer == "Adam" else 1e-5
    for name, (lib, how, make) in PEERS.items():
        if name in skip:
            w.contenders.append(Contender(name, lib, None, pending=skip[name], note=how))
            continue
        try:
            peer = make(*args)
            t0 = time.perf_counter()
            peer.step()
            first = time.perf_counter() - t0
            ok, diff = check(peer, reference, atol=atol)
        except Exception as e:  # noqa: BLE001 - any failure of a peer is reported, never fatal
            w.contenders.append(Contender(name, lib, None, pending=unavailable(name, e), note=how))
            continue
        w.checks.append(f"{name}: max |param - torch eager's| after 3 steps {diff:.2g} "
                        f"({'ok' if ok else 'MISMATCH'}, rtol 1e-4, atol {atol:g})")
        w.contenders.append(Contender(name, lib, peer.step, note=how, first=first,
                                      factory=lambda p=peer: (p.reset(), p.step)[1]))
