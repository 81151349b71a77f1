"""MKL matrix products (chainrule/_blas.py): same values as np.matmul, every layout, and the fallbacks.

CI installs MKL with the test extra, so the rest of the suite (the PyTorch oracle tests included)
runs its large products through MKL too; these tests pin the dispatch itself.
"""

import os
import subprocess
import sys

import numpy as np
import pytest

import chainrule as cr
from chainrule import _blas, ops


@pytest.fixture
def mkl():
    if _blas._lib is None and not _blas._load():
        if os.environ.get("CHAINRULE_REQUIRE_ORACLE"):
            pytest.fail("MKL is required in CI (the test extra installs chainrule[mkl])")
        pytest.skip("MKL not installed (pip install -e '.[mkl]')")
    previous = _blas.use("mkl")
    yield _blas._mkl_matmul
    _blas.use(previous)


def _layouts(a):
    """a as C-contiguous, F-contiguous, a column slice of a wider array, and a row slice of a taller
    F-ordered one: every stride pattern BLAS takes without a copy."""
    m, k = a.shape
    wide = np.zeros((m, k + 5), a.dtype)
    wide[:, :k] = a
    tall = np.zeros((m + 3, k), a.dtype, order="F")
    tall[:m] = a
    return {"C": a, "F": np.asfortranarray(a), "cols": wide[:, :k], "rows": tall[:m]}


@pytest.mark.parametrize("dtype,tol", [(np.float32, 1e-5), (np.float64, 1e-12)])
def test_mkl_matches_numpy_in_every_layout(mkl, dtype, tol):
    rng = np.random.default_rng(0)
    a = rng.standard_normal((150, 130)).astype(dtype)
    b = rng.standard_normal((130, 110)).astype(dtype)
    assert a.shape[0] * a.shape[1] * b.shape[1] >= _blas.MIN_MACS_ONE_THREAD  # the MKL path, not the fallback
    want = a.astype(np.float64) @ b.astype(np.float64)
    for la, x in _layouts(a).items():
        for lb, y in _layouts(b).items():
            got = mkl(x, y)
            assert got.dtype == dtype and got.shape == (150, 110) and got.flags.c_contiguous, (la, lb)
            np.testing.assert_allclose(got, want, rtol=tol, atol=tol * 30, err_msg=f"{la} @ {lb}")


def test_fallbacks_give_numpys_result(mkl):
    rng = np.random.default_rng(1)
    a = rng.standard_normal((200, 120)).astype(np.float32)
    b = rng.standard_normal((120, 100)).astype(np.float32)
    cases = {
        "strided both ways": (a[::2, ::2], b[::2, ::2]),  # no unit stride: BLAS would need a copy
        "small": (a[:8, :8], b[:8, :8]),
        "int": (a.astype(np.int64), b.astype(np.int64)),
        "mixed dtypes": (a, b.astype(np.float64)),
        "batched": (np.stack([a, a]), b),
        "vector": (a, b[:, 0]),
        "reversed": (a[::-1], b),
    }
    for name, (x, y) in cases.items():
        got, want = mkl(x, y), np.matmul(x, y)
        assert got.dtype == want.dtype and got.shape == want.shape, name
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-4, err_msg=name)


def test_shape_mismatch_still_names_the_op(mkl):
    a = np.ones((200, 120), np.float32)
    with pytest.raises(ValueError, match=r"matmul: \(200, 120\) @ \(119, 100\): 120 != 119"):
        ops.matmul(a, np.ones((119, 100), np.float32))


def test_linear_and_its_gradients_go_through_the_switch(mkl, monkeypatch):
    calls = []

    def counting(a, b):
        calls.append((a.shape, b.shape))
        return mkl(a, b)
    monkeypatch.setattr(_blas, "matmul", counting)
    rng = np.random.default_rng(2)
    x = cr.tensor(rng.standard_normal((64, 96)).astype(np.float32), requires_grad=True)
    w = cr.tensor(rng.standard_normal((80, 96)).astype(np.float32), requires_grad=True)
    b = cr.tensor(np.zeros(80, np.float32), requires_grad=True)
    y = ops.linear(x, w, b)
    (y * y).sum().backward()
    # forward (W x^T), dx = (W^T G^T)^T, dW = G^T X: three products, all through _blas.matmul
    assert calls == [((80, 96), (96, 64)), ((96, 80), (80, 64)), ((80, 64), (64, 96))]
    g = 2 * (x._data @ w._data.T)
    np.testing.assert_allclose(x.grad._data, g @ w._data, rtol=1e-4, atol=1e-3)
    np.testing.assert_allclose(w.grad._data, g.T @ x._data, rtol=1e-4, atol=1e-3)


def test_threshold_follows_mkls_thread_count(mkl, monkeypatch):
    # One thread: NumPy below 2^20 multiply-adds (MKL's call overhead loses there). More threads: MKL from
    # 2^18 up, every product OpenBLAS would thread, so two spinning thread pools never share the cores.
    threadpoolctl = pytest.importorskip("threadpoolctl")
    to_numpy = []
    real = np.matmul
    monkeypatch.setattr(np, "matmul", lambda a, b: to_numpy.append(a.shape) or real(a, b))
    a = np.ones((128, 64), np.float32)
    b = np.ones((64, 64), np.float32)  # 2^19 multiply-adds
    with threadpoolctl.threadpool_limits(1, user_api="blas"):
        assert _blas.info()["threads"] == 1 and _blas.info()["min_macs"] == _blas.MIN_MACS_ONE_THREAD
        np.testing.assert_array_equal(mkl(a, b), np.full((128, 64), 64, np.float32))
        assert to_numpy == [(128, 64)]
    with threadpoolctl.threadpool_limits(2, user_api="blas"):
        assert _blas.info()["min_macs"] == _blas.MIN_MACS
        np.testing.assert_array_equal(mkl(a, b), np.full((128, 64), 64, np.float32))
        assert to_numpy == [(128, 64)]  # MKL took it


def test_use_switches_and_reports(mkl):
    assert _blas.info()["name"] == "mkl" and "Math Kernel Library" in _blas.info()["version"]
    assert _blas.use("numpy") == "mkl"
    assert _blas.matmul is np.matmul and _blas.info() == {"name": "numpy", "path": None, "version": None,
                                                          "min_macs": None, "threads": None}
    assert _blas.use("mkl") == "numpy" and _blas.matmul is _blas._mkl_matmul
    with pytest.raises(ValueError, match="'mkl' or 'numpy', got 'openblas'"):
        _blas.use("openblas")


def test_environment_variable_chooses_at_import():
    def run(value):
        env = {**os.environ, "CHAINRULE_BLAS": value}
        return subprocess.run([sys.executable, "-c", "from chainrule import _blas; print(_blas.info()['name'])"],
                              capture_output=True, text=True, env=env, timeout=120)
    off = run("numpy")
    assert off.returncode == 0 and off.stdout.strip() == "numpy", off.stderr
    bad = run("atlas")
    assert bad.returncode != 0 and "CHAINRULE_BLAS must be 'auto', 'mkl' or 'numpy', got 'atlas'" in bad.stderr
    if _blas._lib is not None:
        assert run("mkl").stdout.strip() == "mkl"
        assert run("auto").stdout.strip() == "mkl"


def test_auto_takes_only_an_mkl_installed_in_this_environment(monkeypatch, tmp_path):
    # A venv without the extra must not pick up an MKL of its base interpreter or of the system.
    from importlib import metadata

    def missing(name):
        raise metadata.PackageNotFoundError(name)
    monkeypatch.setattr(metadata, "distribution", missing)
    monkeypatch.setattr(sys, "prefix", str(tmp_path))
    assert _blas._find_mkl() is None
    (tmp_path / "lib").mkdir()
    (tmp_path / "lib" / "libmkl_rt.so.2").write_bytes(b"")
    assert _blas._find_mkl() == str(tmp_path / "lib" / "libmkl_rt.so.2")


def test_sizes_beyond_32_bits_go_to_numpy(mkl, monkeypatch):
    # MKL's LP64 interface takes 32-bit sizes; a leading dimension past 2^31 (a column slice of a huge
    # array) must not be truncated. Faked with a strided view: only the strides are inspected.
    a = np.ones((512, 512), np.float32)
    huge = np.lib.stride_tricks.as_strided(a, shape=(512, 512), strides=((1 << 31) * 4, 4))
    calls = []
    real = np.matmul
    monkeypatch.setattr(np, "matmul", lambda x, y: calls.append(1) or real(a, y))
    mkl(huge, a)
    assert calls == [1]
