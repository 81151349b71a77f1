"""The benchmark workloads: one builder per workload, one contender per library.

A builder returns a :class:`Workload` whose contenders each hold a zero-argument ``step`` (one training
step, or one whole job for the full-job workloads) built on the same data and, where the libraries
allow it, the same initial weights. ``bench/run.py`` times them; ``tests/test_bench_smoke.py`` runs the
chainrule side for a couple of steps. Nothing here measures time.

The chainrule side uses the public API (``chainrule.models``/``nn``/``optim``) when it exists. A
contender whose chainrule piece has not landed yet is *pending* (``step is None`` and ``pending`` says
why): it is never replaced by a hand-written NumPy stand-in. Peers (PyTorch, mygrad, scikit-learn) use
their own idiomatic code; mygrad has no optimizers, so its SGD/Adam is the usual few lines of NumPy.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

MLP_SIZES = (784, 512, 512, 10)
MLP_BATCHES = (16, 128, 1024)
ADAM_LR = 1e-3
SGD_LR = 0.1
MOONS_SIZES = (2, 16, 16, 1)  # micrograd's demo: MLP(2, [16, 16, 1])
HINGE_ALPHA = 1e-4            # the demo's L2 weight: alpha * sum(p * p for p in params)
LOSSES = ("cross_entropy", "hinge_l2")  # a training-step workload's loss, by name (Workload.spec)


@dataclass
class Contender:
    """One library's side of a workload. ``step()`` returns the loss (a tensor-like) or, for jobs, the
    test accuracy. ``step is None`` means pending, with the reason in ``pending``."""

    name: str
    lib: str                      # chainrule | torch | mygrad | sklearn
    step: Callable | None = None
    pending: str = ""
    note: str = ""
    blocks: int | None = None     # timed blocks per round, if not the workload's (the sgemm probe: 1)
    factory: Callable | None = None  # rebuilds step (fresh weights and optimizer state): see Workload.reset
    gflop: float | None = None    # work per call, for probes that are not the workload's step
    first: float | None = None    # wall seconds of its first call (trace/compile time for jax.jit, torch.compile)


@dataclass
class Workload:
    key: str
    title: str
    unit: str                     # "ms" or "us" per step, or "s" per job
    block: int                    # steps per timed block (tiny steps are timed in blocks)
    contenders: list[Contender] = field(default_factory=list)
    flops: int | None = None      # per step, for GFLOP/s
    baseline: str = "torch"       # ratios are chainrule / this contender
    job: bool = False             # step() runs a whole job and returns test accuracy
    # Rebuild model and optimizer (untimed) before each contender's turn in a round, so every timed step is
    # an early step of a fresh run. Otherwise thousands of steps on one fixed batch memorise it: the loss
    # hits 0, gradients underflow to subnormals and the timings measure subnormal arithmetic, not training.
    reset: bool = False
    data_source: str = ""
    # (sizes, arrays, xs, ys, optimizer, lr, loss) of a training-step workload, loss one of LOSSES:
    # bench/peers.py builds its peers from it
    spec: tuple | None = None
    checks: list[str] = field(default_factory=list)  # the peers' parameter checks against torch eager


def _try(fn, name, lib, note=""):
    """Build a contender, turning a missing chainrule piece into a pending row (never a fake one)."""
    try:
        step = fn()
    except _Pending as e:
        return Contender(name, lib, None, pending=str(e), note=note)
    except ImportError as e:  # a peer that is not installed (mygrad is only in the bench extra)
        if lib == "chainrule":
            raise
        return Contender(name, lib, None, pending=f"{e.name} not installed (pip install -e '.[bench]')", note=note)
    if isinstance(step, tuple):  # (step, how): the builder says which chainrule path it used
        step, note = step
        fn = (lambda f=fn: f()[0])
    return Contender(name, lib, step, note=note, factory=fn)


class _Pending(Exception):
    pass


def _cr_module(name: str):
    try:
        return importlib.import_module(f"chainrule.{name}")
    except ImportError as e:
        raise _Pending(f"chainrule.{name} has not landed ({e})") from None


def _cr_attr(module: str, attr: str):
    mod = _cr_module(module)
    if not hasattr(mod, attr):
        raise _Pending(f"chainrule.{module}.{attr} has not landed")
    return getattr(mod, attr)


# ----- shared initial weights and data ------------------------------------------------------------
def init_mlp(sizes, seed=0):
    """PyTorch's default Linear init, U(-1/sqrt(fan_in), 1/sqrt(fan_in)), as float32 (out, in) arrays."""
    rng = np.random.default_rng(seed)
    arrays = []
    for n_in, n_out in zip(sizes[:-1], sizes[1:]):
        bound = 1.0 / np.sqrt(n_in)
        arrays.append(rng.uniform(-bound, bound, (n_out, n_in)).astype(np.float32))
        arrays.append(rng.uniform(-bound, bound, (n_out,)).astype(np.float32))
    return arrays


def batch(n, d, classes=10, seed=1):
    rng = np.random.default_rng(seed)
    return rng.standard_normal((n, d), dtype=np.float32), rng.integers(0, classes, n).astype(np.int64)


def batches(n, d, classes=10, seed=1, samples=4096):
    """A pool of ``max(4, samples // n)`` batches that the steps cycle through. Repeating one fixed batch
    would be memorised within ~10 Adam steps (loss ~0, gradients collapsing toward subnormals), which is
    not the regime a training step is timed in."""
    rng = np.random.default_rng(seed)
    k = max(4, samples // n)
    return ([rng.standard_normal((n, d), dtype=np.float32) for _ in range(k)],
            [rng.integers(0, classes, n).astype(np.int64) for _ in range(k)])


def _cycle(items):
    """A zero-argument function returning items[0], items[1], ... round and round."""
    state = [0]

    def nxt():
        i = state[0]
        state[0] = (i + 1) % len(items)
        return items[i]
    return nxt


def _pool(x, y):
    return (x, y) if isinstance(x, list) else ([x], [y])


# ----- the losses, for chainrule and torch -------------------------------------------------------
def hinge_l2(scores, y, params):
    """micrograd's demo loss: the SVM max-margin loss plus L2, ``mean_i relu(1 - y_i s_i) + alpha sum_p p^2``
    (labels ``y`` of -1/+1, the shape of the scores). One function for chainrule and torch: their tensors
    share the API it uses."""
    return (1 - y * scores).relu().mean() + HINGE_ALPHA * sum((p * p).sum() for p in params)


def loss_fn(lib: str, loss: str) -> Callable:
    """The loss named ``loss`` (one of :data:`LOSSES`) for ``lib`` ("chainrule" or "torch"), as
    ``f(scores, y, params) -> loss``: cross-entropy is each library's own ``F.cross_entropy``."""
    if loss == "hinge_l2":
        return hinge_l2
    if loss != "cross_entropy":
        raise ValueError(f"unknown loss {loss!r}: choose one of {LOSSES}")
    if lib == "torch":
        from torch.nn.functional import cross_entropy
    else:
        from chainrule.functional import cross_entropy
    return lambda scores, y, params: cross_entropy(scores, y)


# ----- chainrule side -----------------------------------------------------------------------------
def cr_mlp(sizes, arrays):
    """A chainrule MLP loaded with ``arrays``: models.MLP if landed, else nn.Sequential, else raw tensors.
    Returns (forward, params, how)."""
    import chainrule as cr
    from chainrule import ops

    model, how = None, ""
    try:
        MLP = _cr_attr("models", "MLP")
        model, how = MLP(list(sizes), activation="relu"), "models.MLP"
    except _Pending:
        try:
            nn = _cr_module("nn")
            layers = []
            for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
                layers.append(nn.Linear(a, b))
                if i < len(sizes) - 2:
                    layers.append(nn.ReLU())
            model, how = nn.Sequential(*layers), "nn.Sequential"
        except (_Pending, AttributeError):
            pass
    if model is not None:
        params = list(model.parameters())
        if [tuple(p.shape) for p in params] != [a.shape for a in arrays]:
            raise RuntimeError(f"{how}: parameter shapes {[tuple(p.shape) for p in params]} are not "
                               f"{[a.shape for a in arrays]} (expected weight (out, in), bias per layer)")
        if arrays[0].dtype != np.float32:  # the float64 run of the peers' numeric check
            model.to(arrays[0].dtype)
        for p, a in zip(params, arrays):
            p.data[...] = a
        return model, params, how

    params = [cr.tensor(a, requires_grad=True) for a in arrays]

    def forward(x):
        h = x
        for i in range(0, len(params), 2):
            h = ops.linear(h, params[i], params[i + 1])
            if i + 2 < len(params):
                h = ops.relu(h)
        return h
    return forward, params, "raw tensors + ops.linear"


def cr_step_body(sizes, arrays, optimizer: str | None, lr, loss: str = "cross_entropy"):
    """A chainrule model loaded with ``arrays`` (their dtype) and its training step on a batch:
    ``(body(x, y) -> loss, params, how)``. ``body`` is zero_grad, forward, the loss (:func:`loss_fn`),
    backward and ``opt.step()``; with ``optimizer`` None, forward+backward only. It is what ``cr.compile``
    records for the "chainrule compiled" row (bench/peers.py), so both rows run the very same step."""
    objective = loss_fn("chainrule", loss)
    Opt = _cr_attr("optim", optimizer) if optimizer is not None else None
    forward, params, how = cr_mlp(sizes, arrays)
    if Opt is None:
        def body(x, y):
            for p in params:
                p.grad = None
            loss = objective(forward(x), y, params)
            loss.backward()
            return loss
        return body, params, f"{how}, no optimizer"
    opt = Opt(params, lr=lr)

    def body(x, y):
        opt.zero_grad()
        loss = objective(forward(x), y, params)
        loss.backward()
        opt.step()
        return loss
    return body, params, f"{how} + optim.{optimizer}"


def cr_train_step(sizes, arrays, x, y, optimizer: str | None, lr, loss: str = "cross_entropy"):
    """One chainrule training step closure on the next batch of the pool; ``optimizer`` None means
    forward+backward only. Returns (step, how)."""
    import chainrule as cr

    body, _, how = cr_step_body(sizes, arrays, optimizer, lr, loss)
    xs, ys = _pool(x, y)
    nxt = _cycle([(cr.tensor(a), cr.tensor(b)) for a, b in zip(xs, ys)])
    return (lambda: body(*nxt())), how


# ----- PyTorch side -------------------------------------------------------------------------------
def torch_mlp(sizes, arrays):
    import torch
    layers = []
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
        layers.append(torch.nn.Linear(a, b))
        if i < len(sizes) - 2:
            layers.append(torch.nn.ReLU())
    model = torch.nn.Sequential(*layers)
    with torch.no_grad():
        for p, a in zip(model.parameters(), arrays):
            p.copy_(torch.from_numpy(a))
    return model


def torch_train_step(sizes, arrays, x, y, optimizer: str | None, lr, fused=False, loss="cross_entropy"):
    import torch
    objective = loss_fn("torch", loss)
    model = torch_mlp(sizes, arrays)
    params = list(model.parameters())
    xs, ys = _pool(x, y)
    nxt = _cycle([(torch.from_numpy(a), torch.from_numpy(b)) for a, b in zip(xs, ys)])
    if optimizer is None:
        def step():
            model.zero_grad(set_to_none=True)
            xt, yt = nxt()
            loss = objective(model(xt), yt, params)
            loss.backward()
            return loss
        return step
    kw = {"fused": True} if fused else {}
    opt = getattr(torch.optim, optimizer)(params, lr=lr, **kw)

    def step():
        opt.zero_grad()
        xt, yt = nxt()
        loss = objective(model(xt), yt, params)
        loss.backward()
        opt.step()
        return loss
    return step


# ----- mygrad side (no optimizers in mygrad: the usual NumPy update) -------------------------------
def mygrad_train_step(sizes, arrays, x, y, optimizer: str | None, lr):
    import mygrad as mg
    from mygrad.nnet.activations import relu
    from mygrad.nnet.losses import softmax_crossentropy
    # mygrad's natural layout is (in, out): x @ W + b
    params = [mg.tensor(a.T.copy() if a.ndim == 2 else a.copy()) for a in arrays]
    state = [(np.zeros_like(a.T if a.ndim == 2 else a), np.zeros_like(a.T if a.ndim == 2 else a)) for a in arrays]
    t = [0]
    b1, b2, eps = 0.9, 0.999, 1e-8
    nxt = _cycle(list(zip(*_pool(x, y))))

    def step():
        h, yb = nxt()
        for i in range(0, len(params), 2):
            h = mg.matmul(h, params[i]) + params[i + 1]
            if i + 2 < len(params):
                h = relu(h)
        loss = softmax_crossentropy(h, yb)
        loss.backward()
        if optimizer == "SGD":
            for p in params:
                p.data -= lr * p.grad
        elif optimizer == "Adam":
            t[0] += 1
            c1, c2 = 1 - b1 ** t[0], 1 - b2 ** t[0]
            for p, (m, v) in zip(params, state):
                g = p.grad
                m *= b1; m += (1 - b1) * g
                v *= b2; v += (1 - b2) * g * g
                p.data -= lr * (m / c1) / (np.sqrt(v / c2) + eps)
        return loss
    return step


# ----- 1. MLP training step -----------------------------------------------------------------------
def _mkl_in_use() -> bool:
    from chainrule import _blas
    return _blas.info()["name"] == "mkl"  # makes the measured choice if it is pending


def _numpy_blas(build):
    """``build`` (a chainrule step builder returning (step, how)), with the step's matrix products in
    NumPy's BLAS instead of chainrule[mkl]'s MKL: the switch is flipped around each call."""
    def wrapped():
        from chainrule import _blas
        step, how = build()

        def step_numpy_blas():
            previous = _blas.use("numpy")
            try:
                return step()
            finally:
                _blas.use(previous)
        return step_numpy_blas, how + ", products in NumPy's BLAS (no chainrule[mkl])"
    return wrapped


def mlp_step(batch_size: int, with_mygrad: bool = True) -> Workload:
    sizes, arrays = MLP_SIZES, init_mlp(MLP_SIZES)
    x, y = batches(batch_size, sizes[0])
    weights = sum(a.size for a in arrays[::2])
    w = Workload(f"mlp{batch_size}", f"MLP 784-512-512-10 train step, Adam, batch {batch_size}",
                 "ms", 1, flops=6 * batch_size * weights, reset=True,
                 spec=(sizes, arrays, x, y, "Adam", ADAM_LR, "cross_entropy"))

    w.contenders.append(_try(lambda: cr_train_step(sizes, arrays, x, y, "Adam", ADAM_LR), "chainrule", "chainrule"))
    if _mkl_in_use():  # what an install without the mkl extra runs, in the same round-robin
        w.contenders.append(_try(_numpy_blas(lambda: cr_train_step(sizes, arrays, x, y, "Adam", ADAM_LR)),
                                 "chainrule, NumPy BLAS", "chainrule"))
    w.contenders.append(_try(lambda: torch_train_step(sizes, arrays, x, y, "Adam", ADAM_LR), "torch", "torch",
                             "Adam (default: for-loop on CPU)"))
    w.contenders.append(_try(lambda: torch_train_step(sizes, arrays, x, y, "Adam", ADAM_LR, fused=True),
                             "torch fused", "torch", "Adam(fused=True)"))
    if with_mygrad:
        w.contenders.append(_try(lambda: mygrad_train_step(sizes, arrays, x, y, "Adam", ADAM_LR), "mygrad",
                                 "mygrad", "NumPy Adam update"))
    # Engine-only rows: forward + backward, no optimizer, so the core can be judged before optim lands.
    cr_fb = _try(lambda: cr_train_step(sizes, arrays, x, y, None, ADAM_LR), "chainrule fwd+bwd", "chainrule")
    w.contenders.append(cr_fb)
    w.contenders.append(_try(lambda: torch_train_step(sizes, arrays, x, y, None, ADAM_LR), "torch fwd+bwd", "torch",
                             "no optimizer"))
    w.contenders += sgemm_probes()
    return w


def sgemm_probes(n: int = 2048) -> list[Contender]:
    """The 2048^3 float32 sgemm as a round-robin contender: the peak is measured under the same noise as
    the workload it normalises ('% of sgemm peak')."""
    rng = np.random.default_rng(0)
    a, b = rng.standard_normal((n, n), dtype=np.float32), rng.standard_normal((n, n), dtype=np.float32)
    out = np.empty((n, n), np.float32)
    probes = [Contender("sgemm NumPy", "probe", lambda: np.matmul(a, b, out=out), note=f"{n}^3 float32",
                        blocks=1, gflop=2 * n ** 3 / 1e9)]
    try:
        import torch
        ta, tb, tout = torch.from_numpy(a), torch.from_numpy(b), torch.empty(n, n)
        probes.append(Contender("sgemm torch", "probe", lambda: torch.mm(ta, tb, out=tout), note=f"{n}^3 float32",
                                blocks=1, gflop=2 * n ** 3 / 1e9))
    except ImportError:
        pass
    if _mkl_in_use():  # chainrule[mkl]: the step's products run in MKL, probe it too
        from chainrule import _blas
        probes.append(Contender("sgemm chainrule", "probe", lambda: _blas.matmul(a, b), note=f"{n}^3 float32, MKL",
                                blocks=1, gflop=2 * n ** 3 / 1e9))
    return probes


# ----- 2. logistic regression ---------------------------------------------------------------------
def logreg_step() -> Workload:
    sizes, arrays = (64, 10), init_mlp((64, 10))
    x, y = batches(32, 64)
    w = Workload("logreg", "Logistic regression 64->10, batch 32, SGD", "us", 20, reset=True,
                 spec=(sizes, arrays, x, y, "SGD", SGD_LR, "cross_entropy"))

    w.contenders.append(_try(lambda: cr_train_step(sizes, arrays, x, y, "SGD", SGD_LR), "chainrule", "chainrule"))
    w.contenders.append(_try(lambda: torch_train_step(sizes, arrays, x, y, "SGD", SGD_LR), "torch", "torch"))
    w.contenders.append(_try(lambda: mygrad_train_step(sizes, arrays, x, y, "SGD", SGD_LR), "mygrad", "mygrad",
                             "NumPy SGD update"))
    w.contenders.append(_try(lambda: cr_train_step(sizes, arrays, x, y, None, SGD_LR), "chainrule fwd+bwd",
                             "chainrule"))
    w.contenders.append(_try(lambda: torch_train_step(sizes, arrays, x, y, None, SGD_LR), "torch fwd+bwd", "torch",
                             "no optimizer"))
    return w


# ----- 2b. micrograd's demo: moons ----------------------------------------------------------------
def moons_data(n=100, seed=1337):
    """micrograd's demo data: ``make_moons(n_samples=100, noise=0.1)`` after its ``np.random.seed(1337)``
    (``random_state=1337`` draws the same numbers), labels mapped to -1/+1 as a column (the scores' shape)."""
    from sklearn.datasets import make_moons
    X, y = make_moons(n_samples=n, noise=0.1, random_state=seed)
    return X.astype(np.float32), (2 * y - 1).astype(np.float32)[:, None]


def init_micrograd(sizes, seed=0):
    """micrograd's ``Neuron`` init: weights U(-1, 1), biases 0, as float32 (out, in) arrays."""
    rng = np.random.default_rng(seed)
    arrays = []
    for n_in, n_out in zip(sizes[:-1], sizes[1:]):
        arrays += [rng.uniform(-1, 1, (n_out, n_in)).astype(np.float32), np.zeros(n_out, np.float32)]
    return arrays


def moons_step() -> Workload:
    """One step of micrograd's demo on the full batch: zero grads, forward, :func:`hinge_l2`, backward,
    SGD with a fixed learning rate (the demo decays it from 1.0 to 0.1 over its 100 steps)."""
    sizes, arrays = MOONS_SIZES, init_micrograd(MOONS_SIZES)
    x, y = moons_data()
    # block 5 x 20 blocks: every turn of a contender is a fresh run of 100 steps, as long as the demo's
    w = Workload("moons", "micrograd's moons demo: MLP 2-16-16-1, full batch of 100, SVM hinge + L2 1e-4, "
                 f"SGD lr {SGD_LR:g}", "ms", 5, reset=True,
                 spec=(sizes, arrays, x, y, "SGD", SGD_LR, "hinge_l2"))
    w.data_source = ("sklearn.datasets.make_moons(n_samples=100, noise=0.1, random_state=1337), y -> 2y - 1; "
                     "micrograd's init (weights U(-1, 1), biases 0)")
    w.contenders.append(_try(lambda: cr_train_step(sizes, arrays, x, y, "SGD", SGD_LR, "hinge_l2"), "chainrule",
                             "chainrule"))
    w.contenders.append(_try(lambda: torch_train_step(sizes, arrays, x, y, "SGD", SGD_LR, loss="hinge_l2"), "torch",
                             "torch", "nn.Sequential + optim.SGD"))
    return w


# ----- 3. per-op overhead -------------------------------------------------------------------------
def add_op() -> Workload:
    rng = np.random.default_rng(0)
    a0, b0, g0 = (rng.standard_normal((8, 8), dtype=np.float32) for _ in range(3))
    w = Workload("add", "Per-op overhead: (8, 8) add, forward + backward", "us", 200)

    def step_of(a, b, g):  # the same step for both libraries: their tensors share the API it uses
        def step():
            a.grad = b.grad = None
            c = a + b
            c.backward(g)
            return c
        return step

    def cr_side():
        import chainrule as cr
        return step_of(cr.tensor(a0, requires_grad=True), cr.tensor(b0, requires_grad=True), cr.tensor(g0))

    def torch_side():
        import torch
        return step_of(torch.from_numpy(a0.copy()).requires_grad_(), torch.from_numpy(b0.copy()).requires_grad_(),
                       torch.from_numpy(g0))

    def mygrad_side():
        import mygrad as mg
        a, b = mg.tensor(a0), mg.tensor(b0)

        def step():
            c = a + b
            c.backward(g0)
            return c
        return step
    w.contenders += [_try(cr_side, "chainrule", "chainrule"), _try(torch_side, "torch", "torch"),
                     _try(mygrad_side, "mygrad", "mygrad")]
    return w


# ----- 4. full jobs -------------------------------------------------------------------------------
def digits_data(seed=0):
    """Digits 8x8 scaled to [0, 1], chainrule.datasets' stratified 80/20 split (loading is not timed)."""
    try:
        ds = _cr_attr("datasets", "load_digits")(test_size=0.2, seed=seed)
        Xtr, Xte, ytr, yte = ds
        src = "chainrule.datasets.load_digits (stratified 80/20 split, seed 0), pixels / 16"
    except _Pending:
        from sklearn.datasets import load_digits
        from sklearn.model_selection import train_test_split
        X, y = load_digits(return_X_y=True)
        Xtr, Xte, ytr, yte = train_test_split(X, y, test_size=0.2, random_state=seed, stratify=y)
        src = "sklearn.datasets.load_digits (stratified 80/20 split, seed 0), pixels / 16"
    f = lambda X: (np.asarray(X, np.float32) / np.float32(16.0)).astype(np.float32)
    return f(Xtr), np.asarray(ytr, np.int64), f(Xte), np.asarray(yte, np.int64), src


def mnist1d_data():
    """MNIST-1D, the package's default arguments and split (4,000 / 1,000), generated offline."""
    try:
        Xtr, Xte, ytr, yte = _cr_attr("datasets", "make_mnist1d")()
        src = "chainrule.datasets.make_mnist1d (mnist1d defaults, 4000 train / 1000 test)"
    except _Pending:
        from mnist1d.data import get_dataset_args, make_dataset
        d = make_dataset(get_dataset_args())
        Xtr, Xte, ytr, yte = d["x"], d["x_test"], d["y"], d["y_test"]
        src = "mnist1d.make_dataset (defaults, 4000 train / 1000 test)"
    return (np.asarray(Xtr, np.float32), np.asarray(ytr, np.int64), np.asarray(Xte, np.float32),
            np.asarray(yte, np.int64), src)


def _epochs(n, bs, epochs, rng):
    for _ in range(epochs):
        perm = rng.permutation(n)
        for i in range(0, n, bs):
            yield perm[i:i + bs]


def job_chainrule_loop(sizes, data, epochs, bs, lr, seed=0):
    """The PyTorch-style loop written with chainrule (models/nn + optim.Adam): same loop as the torch job."""
    Adam = _cr_attr("optim", "Adam")

    def run():
        import chainrule as cr
        from chainrule.functional import cross_entropy
        Xtr, ytr, Xte, yte = data[:4]
        forward, params, _ = cr_mlp(sizes, init_mlp(sizes, seed))
        opt = Adam(params, lr=lr)
        rng = np.random.default_rng(seed)
        for idx in _epochs(len(Xtr), bs, epochs, rng):
            opt.zero_grad()
            loss = cross_entropy(forward(cr.Tensor(Xtr[idx])), ytr[idx])
            loss.backward()
            opt.step()
        with cr.no_grad():
            pred = forward(cr.Tensor(Xte)).data.argmax(1)
        return float((pred == yte).mean())
    return run


def job_chainrule_fit(sizes, data, epochs, bs, lr, seed=0, compile=False):
    """models.MLP + optim.Adam + chainrule.train.fit: the library's own training loop (``compile``:
    its steps replayed by ``cr.compile``, recording included in the time)."""
    Adam, fit, MLP = _cr_attr("optim", "Adam"), _cr_attr("train", "fit"), _cr_attr("models", "MLP")
    if compile:
        _cr_attr("compile", "Compiled")

    def run():
        import chainrule as cr
        Xtr, ytr, Xte, yte = data[:4]
        model = MLP(list(sizes), activation="relu")
        for p, a in zip(model.parameters(), init_mlp(sizes, seed)):
            p.data[...] = a
        fit(model, "cross_entropy", Adam(model.parameters(), lr=lr), (Xtr, ytr), epochs=epochs, batch_size=bs,
            metrics=(), progress=False, seed=seed, **({"compile": True} if compile else {}))
        with cr.no_grad():
            pred = model(cr.Tensor(Xte)).data.argmax(1)
        return float((pred == yte).mean())
    return run


def job_chainrule_sklearn(hidden, data, epochs, bs, lr, seed=0):
    """chainrule.sklearn.MLPClassifier, set up like the scikit-learn job: Adam, no L2, all epochs."""
    MLPClassifier = _cr_attr("sklearn", "MLPClassifier")

    def run():
        import warnings
        Xtr, ytr, Xte, yte = data[:4]
        warnings.filterwarnings("ignore", message=".*max_epochs=")
        clf = MLPClassifier(hidden_layer_sizes=hidden, optimizer="adam", learning_rate=lr, batch_size=bs,
                            max_epochs=epochs, alpha=0.0, tol=0.0, n_iter_no_change=10 ** 9, random_state=seed)
        clf.fit(Xtr, ytr)
        return float((np.asarray(clf.predict(Xte)) == yte).mean())
    return run


def _job_batches(data, epochs, bs, seed):
    Xtr, ytr = data[:2]
    idx = list(_epochs(len(Xtr), bs, epochs, np.random.default_rng(seed)))
    return [Xtr[i] for i in idx], [ytr[i] for i in idx]


def _accuracy(params, Xte, yte) -> float:
    h = Xte
    for i in range(0, len(params), 2):
        h = h @ params[i].T + params[i + 1]
        if i + 2 < len(params):
            h = np.maximum(h, 0)
    return float((h.argmax(1) == yte).mean())


def job_peer(cls, sizes, data, epochs, bs, lr, seed=0):
    """The same job through a peer's step (bench/peers.py: hand NumPy, or jax.jit whose compilation of both
    batch shapes, full and last, counts in the job's time)."""
    def run():
        xs, ys = _job_batches(data, epochs, bs, seed)
        peer = cls(sizes, init_mlp(sizes, seed), xs, ys, "Adam", lr)
        for _ in range(len(xs)):
            peer.step()
        return _accuracy([np.asarray(p) for p in peer.params()], *data[2:4])
    return run


def job_torch(sizes, data, epochs, bs, lr, seed=0):
    def run():
        import torch
        import torch.nn.functional as F
        Xtr, ytr, Xte, yte = data[:4]
        model = torch_mlp(sizes, init_mlp(sizes, seed))
        opt = torch.optim.Adam(model.parameters(), lr=lr)
        X, Y = torch.from_numpy(Xtr), torch.from_numpy(ytr)
        rng = np.random.default_rng(seed)
        for idx in _epochs(len(Xtr), bs, epochs, rng):
            i = torch.from_numpy(idx)
            opt.zero_grad()
            loss = F.cross_entropy(model(X[i]), Y[i])
            loss.backward()
            opt.step()
        with torch.no_grad():
            pred = model(torch.from_numpy(Xte)).argmax(1).numpy()
        return float((pred == yte).mean())
    return run


def job_sklearn(hidden, data, epochs, bs, lr, seed=0):
    def run():
        import warnings

        from sklearn.exceptions import ConvergenceWarning
        from sklearn.neural_network import MLPClassifier
        Xtr, ytr, Xte, yte = data[:4]
        # Same settings as the others: Adam, no L2 (alpha=0), exactly `epochs` epochs (no early stop).
        clf = MLPClassifier(hidden_layer_sizes=hidden, solver="adam", alpha=0.0, batch_size=bs,
                            learning_rate_init=lr, max_iter=epochs, tol=0.0, n_iter_no_change=10 ** 9,
                            shuffle=True, random_state=seed)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            clf.fit(Xtr, ytr)
        return float((clf.predict(Xte) == yte).mean())
    return run


def job_mygrad(sizes, data, epochs, bs, lr, seed=0):
    def run():
        import mygrad as mg
        Xtr, ytr, Xte, yte = data[:4]
        train = _MygradAdam(sizes, init_mlp(sizes, seed), lr)
        rng = np.random.default_rng(seed)
        for idx in _epochs(len(Xtr), bs, epochs, rng):
            train(Xtr[idx], ytr[idx])
        with mg.no_autodiff:
            h, p = Xte, train.params
            for i in range(0, len(p), 2):
                h = mg.matmul(h, p[i]) + p[i + 1]
                if i + 2 < len(p):
                    h = mg.maximum(h, 0)
        return float((np.asarray(h).argmax(1) == yte).mean())
    return run


class _MygradAdam:
    """mygrad MLP + the usual NumPy Adam, taking a batch per call (for the full jobs)."""

    def __init__(self, sizes, arrays, lr, b1=0.9, b2=0.999, eps=1e-8):
        import mygrad as mg
        self.params = [mg.tensor(a.T.copy() if a.ndim == 2 else a.copy()) for a in arrays]
        self.m = [np.zeros(p.shape, np.float32) for p in self.params]
        self.v = [np.zeros(p.shape, np.float32) for p in self.params]
        self.lr, self.b1, self.b2, self.eps, self.t = lr, b1, b2, eps, 0

    def __call__(self, x, y):
        import mygrad as mg
        from mygrad.nnet.activations import relu
        from mygrad.nnet.losses import softmax_crossentropy
        h, p = x, self.params
        for i in range(0, len(p), 2):
            h = mg.matmul(h, p[i]) + p[i + 1]
            if i + 2 < len(p):
                h = relu(h)
        loss = softmax_crossentropy(h, y)
        loss.backward()
        self.t += 1
        c1, c2 = 1 - self.b1 ** self.t, 1 - self.b2 ** self.t
        for q, m, v in zip(p, self.m, self.v):
            g = q.grad
            m *= self.b1; m += (1 - self.b1) * g
            v *= self.b2; v += (1 - self.b2) * g * g
            q.data -= self.lr * (m / c1) / (np.sqrt(v / c2) + self.eps)
        return loss


def _seed_per_call(make):
    """A job step whose n-th call runs ``make(n)()``: seed n for the initial weights, the shuffling and the
    estimators' random_state, so the median accuracy is over seeds (every library gets seeds 0, 1, 2, ...)."""
    make(0)  # build once now: a chainrule piece that has not landed raises _Pending here
    count = [0]

    def step():
        seed = count[0]
        count[0] += 1
        return make(seed)()
    return step


def _peer(name: str):
    import peers
    if name == "JaxStep":
        import jax  # noqa: F401 - ImportError: a pending row
    return getattr(peers, name)


def full_job(name: str, quick: bool = False) -> Workload:
    if name == "digits":
        data, hidden, bs, lr = digits_data(), (128,), 32, 1e-3
        title = "Digits: MLP 64-128-10, 30 epochs, batch 32, Adam 1e-3 (time per job; test accuracy)"
    else:
        data, hidden, bs, lr = mnist1d_data(), (128, 128), 100, 1e-3
        title = "MNIST-1D: MLP 40-128-128-10, 30 epochs, batch 100, Adam 1e-3 (time per job; test accuracy)"
    epochs = 3 if quick else 30
    sizes = (data[0].shape[1], *hidden, 10)
    w = Workload(name, title + (" [--quick: 3 epochs]" if quick else ""), "s", 1, job=True)
    w.contenders += [
        _try(lambda: _seed_per_call(lambda s: job_chainrule_loop(sizes, data, epochs, bs, lr, s)), "chainrule",
             "chainrule", "models/nn + optim.Adam, hand loop"),
        _try(lambda: _seed_per_call(lambda s: job_torch(sizes, data, epochs, bs, lr, s)), "torch", "torch",
             "nn.Sequential + optim.Adam, hand loop"),
        _try(lambda: _seed_per_call(lambda s: job_chainrule_fit(sizes, data, epochs, bs, lr, s)), "chainrule fit",
             "chainrule", "models.MLP + optim.Adam + train.fit"),
        _try(lambda: _seed_per_call(lambda s: job_chainrule_fit(sizes, data, epochs, bs, lr, s, compile=True)),
             "chainrule fit compiled", "chainrule", "the same with fit(compile=True)"),
        _try(lambda: _seed_per_call(lambda s: job_peer(_peer("NumpyStep"), sizes, data, epochs, bs, lr, s)),
             "hand NumPy", "numpy", "forward, backward and Adam written out in NumPy"),
        _try(lambda: _seed_per_call(lambda s: job_peer(_peer("JaxStep"), sizes, data, epochs, bs, lr, s)),
             "jax.jit", "jax", "jax.jit(loss, grad, optax.adam), compile included"),
        _try(lambda: _seed_per_call(lambda s: job_chainrule_sklearn(hidden, data, epochs, bs, lr, s)),
             "chainrule MLPClassifier", "chainrule", "chainrule.sklearn.MLPClassifier"),
        _try(lambda: _seed_per_call(lambda s: job_sklearn(hidden, data, epochs, bs, lr, s)), "sklearn", "sklearn",
             "MLPClassifier(solver='adam', alpha=0)"),
        _try(lambda: _seed_per_call(lambda s: job_mygrad(sizes, data, epochs, bs, lr, s)), "mygrad", "mygrad",
             "NumPy Adam update"),
    ]
    w.data_source = data[4]
    return w


def all_workloads(quick: bool = False) -> list[Workload]:
    return [*(mlp_step(b) for b in MLP_BATCHES), logreg_step(), moons_step(), add_op(),
            full_job("digits", quick), full_job("mnist1d", quick)]
