"""Smoke test of the benchmark suite: every workload's chainrule side runs a step or two in process.

No timing assertions (speed lives in bench/, see docs/performance.md): only that each step executes,
that its loss is finite, and that it goes down where an optimizer is stepping on a fixed batch.
"""

import math
import os
import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))

import workloads as W  # noqa: E402

if os.environ.get("CHAINRULE_REQUIRE_ORACLE"):
    import torch  # noqa: F401 - in CI a missing torch must fail, not skip
else:
    pytest.importorskip("torch")  # the workloads build their PyTorch side alongside (not run here)


def _value(loss) -> float:
    return float(np.asarray(getattr(loss, "data", loss)).sum())


def _chainrule_side(w):
    live = [c for c in w.contenders if c.lib == "chainrule" and c.step is not None]
    if not live:
        pytest.skip(f"{w.key}: chainrule side pending: {[c.pending for c in w.contenders if c.lib == 'chainrule']}")
    return live


@pytest.mark.parametrize("build", [lambda: W.mlp_step(16, with_mygrad=False), W.logreg_step, W.moons_step],
                         ids=["mlp16", "logreg", "moons"])
def test_training_step_runs(build):
    for c in _chainrule_side(build()):
        losses = [_value(c.step()) for _ in range(3)]  # the workload cycles through a pool of batches
        assert all(math.isfinite(v) for v in losses), (c.name, losses)


@pytest.mark.parametrize("sizes, optimizer, lr", [(W.MLP_SIZES, "Adam", W.ADAM_LR), ((64, 10), "SGD", W.SGD_LR),
                                                  (W.MLP_SIZES, None, W.ADAM_LR)], ids=["mlp-adam", "logreg-sgd", "fwd+bwd"])
def test_training_step_learns_on_a_fixed_batch(sizes, optimizer, lr):
    try:
        step, how = W.cr_train_step(sizes, W.init_mlp(sizes), *W.batch(16, sizes[0]), optimizer, lr)
    except W._Pending as e:
        pytest.skip(str(e))
    first, second = _value(step()), _value(step())
    assert math.isfinite(first) and math.isfinite(second), how
    if optimizer is None:
        assert second == pytest.approx(first, rel=1e-6), f"{how}: no optimizer, the loss must not move"
    else:
        assert second < first, f"{how}: loss did not decrease on a fixed batch: {first} -> {second}"


def test_moons_step_learns_and_matches_torch():
    # micrograd's demo: chainrule's hinge + L2 step lowers the loss on the full batch, as torch's does
    sizes, arrays, (x, y) = W.MOONS_SIZES, W.init_micrograd(W.MOONS_SIZES), W.moons_data()
    assert x.shape == (100, 2) and y.shape == (100, 1) and set(np.unique(y)) == {-1.0, 1.0}
    step, how = W.cr_train_step(sizes, arrays, x, y, "SGD", W.SGD_LR, "hinge_l2")
    ours = [_value(step()) for _ in range(5)]
    torch_step = W.torch_train_step(sizes, arrays, x, y, "SGD", W.SGD_LR, loss="hinge_l2")
    theirs = [_value(torch_step()) for _ in range(5)]
    assert ours[-1] < ours[0], f"{how}: hinge loss did not decrease: {ours}"
    np.testing.assert_allclose(ours, theirs, rtol=1e-4)


def test_mlp_step_large_batch_runs():
    for c in _chainrule_side(W.mlp_step(1024, with_mygrad=False)):
        assert math.isfinite(_value(c.step())), c.name


def test_add_op_runs():
    for c in _chainrule_side(W.add_op()):
        out = c.step()
        assert out.shape == (8, 8) and np.isfinite(out._data).all()


@pytest.mark.parametrize("name, chance", [("digits", 0.1), ("mnist1d", 0.1)])
def test_full_job_learns(name, chance):
    w = W.full_job(name, quick=True)  # 3 epochs
    for c in _chainrule_side(w):
        acc = c.step()
        assert 2 * chance < acc <= 1.0, f"{name} {c.name}: test accuracy {acc} after 3 epochs"


def test_profile_renders():
    import bench_profile
    md = bench_profile.profile_step(16, steps=2, top=3)
    assert "| function |" in md and "chainrule" in md


def test_memory_probe_runs_in_process():
    import bench_memory
    res = bench_memory.child("chainrule", 16, threads=1)
    assert res["peak"] > 0 and (res["rss_peak"] is None or res["rss_peak"] >= 0)


@pytest.mark.parametrize("peer", ["hand NumPy", "jax.jit"])
def test_peer_runs_the_same_step_as_torch_eager(peer):
    # the bench's parameter check itself (float32 and float64 runs against torch eager in float64), on the
    # logistic regression and a small MLP batch (cheap to compile); torch.compile is left to the bench
    import peers as P
    lib, _, make = P.PEERS[peer]
    if lib == "jax":
        pytest.importorskip("jax", reason="jax not installed (pip install -e '.[bench]')")
        pytest.importorskip("optax", reason="optax not installed (pip install -e '.[bench]')")
    sizes, arrays = (64, 10), W.init_mlp((64, 10))
    ok, line = P.Reference((sizes, arrays, *W.batches(32, 64), "SGD", W.SGD_LR)).check(peer, lib, make)
    assert ok and "ok" in line, line
    ok, line = P.Reference((W.MLP_SIZES, W.init_mlp(W.MLP_SIZES), *W.batches(16, 784, samples=64), "Adam",
                            W.ADAM_LR)).check(peer, lib, make)
    assert ok, line
    ok, line = P.Reference(_moons_args()).check(peer, lib, make)  # the hinge + L2 loss
    assert ok, line


def _moons_args():
    x, y = W.moons_data()
    return W.MOONS_SIZES, W.init_micrograd(W.MOONS_SIZES), [x], [y], "SGD", W.SGD_LR, "hinge_l2"


def test_the_peer_check_catches_a_different_step():
    import peers as P
    args = (W.MLP_SIZES, W.init_mlp(W.MLP_SIZES), *W.batches(16, 784, samples=64), "Adam", W.ADAM_LR)
    # twice the learning rate: the same code, a different step
    ok, line = P.Reference(args).check("lr x2", "numpy", lambda *a: P.NumpyStep(*a[:-1], 2 * W.ADAM_LR))
    assert not ok and "MISMATCH" in line, line


def test_the_peer_check_catches_a_missing_l2_term():
    import peers as P

    def without_l2(*args):  # the hinge's data term only: its alpha = 1e-4 is a small part of the step
        peer = P.NumpyStep(*args)
        peer.decay = 0.0
        return peer
    ok, line = P.Reference(_moons_args()).check("no L2", "numpy", without_l2)
    assert not ok and "MISMATCH" in line, line
    ok, line = P.Reference(_moons_args()).check("hand NumPy", "numpy", P.NumpyStep)
    assert ok, line


def _no_compiled_peers():
    import peers as P
    return {n: "skipped by the test" for n in P.PEERS if n != "chainrule compiled"}


def test_compiled_column_is_pending_until_cr_compile_lands(monkeypatch):
    import peers as P

    import chainrule
    monkeypatch.delattr(chainrule, "compile", raising=False)
    w = W.logreg_step()
    P.add_peers(w, skip=_no_compiled_peers())
    row = next(c for c in w.contenders if c.name == "chainrule compiled")
    assert row.step is None and "chainrule.compile has not landed" in row.pending


def test_compiled_column_runs_and_is_checked_when_cr_compile_exists(monkeypatch):
    # the harness's wiring only: an identity "compile" replays nothing, so the row must equal eager bit for bit
    import peers as P

    import chainrule
    monkeypatch.setattr(chainrule, "compile", lambda fn: fn, raising=False)
    w = W.logreg_step()
    P.add_peers(w, skip=_no_compiled_peers())
    row = next(c for c in w.contenders if c.name == "chainrule compiled")
    assert row.step is not None and row.first is not None and math.isfinite(_value(row.step()))
    line = next(line for line in w.checks if line.startswith("chainrule compiled"))
    assert "(ok:" in line and "bit-identical to chainrule eager: yes" in line, line
