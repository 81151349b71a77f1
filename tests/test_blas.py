"""MKL matrix products (chainrule/_blas.py): same values as np.matmul, every layout, the fallbacks, and
the measured choice between the libraries (decision from injected timings, its cache, the overrides).

CI installs MKL with the test extra, so the rest of the suite (the PyTorch oracle tests included)
runs its large products through MKL too; these tests pin the dispatch itself.
"""

import json
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
    # forward (W x^T) (fewer rows than outputs), dx = G W (in x's C order), dW = G^T X: three products,
    # all through _blas.matmul
    assert calls == [((80, 96), (96, 64)), ((64, 80), (80, 96)), ((80, 64), (64, 96))]
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
    assert _blas.matmul is np.matmul and _blas.info() == {
        "name": "numpy", "path": None, "version": None, "min_macs": None, "threads": None,
        "chosen_by": "set_blas", "reason": "set_blas('numpy')", "gflops": None, "measurement": None}
    assert _blas.use("mkl") == "numpy" and _blas.matmul is _blas._mkl_matmul
    assert _blas.info()["chosen_by"] == "set_blas"
    with pytest.raises(ValueError, match="'mkl', 'numpy' or 'auto', got 'openblas'"):
        _blas.use("openblas")


def _trials(numpy_gflops, mkl_gflops, rounds=5, slow=None):
    """What _measure returns when each library runs every product at the given sgemm rate in each of
    ``rounds`` rounds; ``slow`` maps (library, round) -> factor for the rounds that load slowed down."""
    flops = [2.0 * m * k * n for m, k, n, _ in _blas.PROBE_PRODUCTS]
    slow = slow or {}
    return {"clock": "thread CPU time", "seconds": {
        lib: [[f / rate / 1e9 * slow.get((lib, r), 1.0) for r in range(rounds)] for f in flops]
        for lib, rate in (("numpy", numpy_gflops), ("mkl", mkl_gflops))}}


@pytest.mark.parametrize("numpy_rate, mkl_rate, want", [(365, 175, "numpy"), (175, 365, "mkl"),
                                                         (200, 218, "numpy"), (200, 222, "mkl")],
                         ids=["amd", "intel", "within-margin-keeps-the-default", "just-past-margin"])
def test_decision_by_measured_rate(numpy_rate, mkl_rate, want):
    name, why = _blas._decide(_trials(numpy_rate, mkl_rate))
    assert name == want and why["chosen_by"] == "probe" and why["measurement"]["conclusive"]
    assert why["gflops"] == {"numpy": pytest.approx(numpy_rate, abs=0.1), "mkl": pytest.approx(mkl_rate, abs=0.1)}
    assert f"numpy {why['gflops']['numpy']:g} GFLOP/s, mkl {why['gflops']['mkl']:g}" in why["reason"]
    assert "best of 5 interleaved rounds (thread CPU time)" in why["reason"]
    assert ("default (numpy) is kept" in why["reason"]) == (want == "numpy")
    products = why["measurement"]["products"]
    assert len(products) == len(_blas.PROBE_PRODUCTS)
    assert products["1024x784x512 NT"] == {"numpy": pytest.approx(numpy_rate, abs=0.1), "mkl": pytest.approx(mkl_rate, abs=0.1)}


def test_load_on_some_rounds_does_not_flip_the_choice():
    # NumPy 5% ahead (within the margin: the default stays), but another process took the core during 3 of
    # NumPy's 5 rounds: a median (the earlier probe) would have picked MKL; the best round of each does not.
    slowed = {("numpy", r): 1.8 for r in (0, 2, 3)}
    name, why = _blas._decide(_trials(210, 200, slow=slowed))
    assert name == "numpy" and why["gflops"] == {"numpy": pytest.approx(210, abs=0.1), "mkl": pytest.approx(200, abs=0.1)}
    # MKL 1.5x ahead, MKL's rounds slowed 3x in 2 of 7 rounds: still MKL, from its undisturbed rounds
    name, why = _blas._decide(_trials(200, 300, rounds=7, slow={("mkl", 1): 3.0, ("mkl", 4): 3.0}))
    assert name == "mkl" and why["gflops"]["mkl"] == pytest.approx(300, abs=0.1)
    assert why["measurement"]["mkl_faster_share"] == pytest.approx(5 / 7, abs=1e-3)


def test_a_lead_only_in_the_best_times_is_inconclusive_and_keeps_the_default():
    # MKL ran fast in one round but lost the other four pairs: its best time says 2x, the pairs say no
    seconds = _trials(200, 400)
    seconds["seconds"]["mkl"] = [[t if r == 0 else t * 2.5 for r, t in enumerate(ts)] for ts in seconds["seconds"]["mkl"]]
    name, why = _blas._decide(seconds)
    assert name == "numpy" and not why["measurement"]["conclusive"]
    assert why["measurement"]["mkl_faster_share"] == pytest.approx(0.2) and "inconclusive" in why["reason"]


def test_decision_weighs_products_by_their_flops():
    # MKL wins the small products by far, NumPy the large ones by a little: the total time decides (a mean of
    # the per-product rates would pick MKL).
    flops = [2.0 * m * k * n for m, k, n, _ in _blas.PROBE_PRODUCTS]
    big = [f > 1e8 for f in flops]
    seconds = {"numpy": [[f / (300e9 if b else 150e9)] * 3 for f, b in zip(flops, big)],
               "mkl": [[f / (250e9 if b else 400e9)] * 3 for f, b in zip(flops, big)]}
    assert _blas._decide({"clock": "wall time", "seconds": seconds})[0] == "numpy"
    with pytest.raises(ValueError, match="want seconds for numpy and mkl"):
        _blas._decide({"seconds": {"numpy": seconds["numpy"]}})
    with pytest.raises(ValueError, match="positive round timings"):
        _blas._decide({"seconds": {"numpy": seconds["numpy"], "mkl": [[0.0] * 3] * len(flops)}})
    with pytest.raises(ValueError, match="same number"):
        _blas._decide({"seconds": {"numpy": seconds["numpy"], "mkl": [ts[:2] for ts in seconds["mkl"]]}})


def test_the_probe_counts_cpu_time_only_on_one_thread(monkeypatch):
    # one thread each: both libraries multiply on the calling thread, whose CPU time excludes what other
    # processes take; with worker threads that clock would miss their work, so wall time
    for mkl_threads, openblas_threads, want in ((1, 1, "thread CPU time"), (1, None, "thread CPU time"),
                                                (2, 1, "wall time"), (1, 2, "wall time")):
        monkeypatch.setattr(_blas, "_max_threads", lambda n=mkl_threads: n)
        monkeypatch.setattr(_blas, "_openblas_core", lambda n=openblas_threads: ("Zen", n))
        assert _blas._clock()[0] == want, (mkl_threads, openblas_threads)


@pytest.fixture
def measured(mkl, monkeypatch, tmp_path):
    """The auto choice with an injected probe (MKL at twice NumPy's rate) and a cache under tmp_path;
    returns the list of probe calls."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    calls = []
    monkeypatch.setattr(_blas, "_measure", lambda *a, **k: calls.append(a) or _trials(100, 200))
    return calls


def _large():
    return np.ones((256, 128), np.float32), np.ones((128, 64), np.float32)  # 2^21 multiply-adds


def test_auto_probes_at_the_first_large_product_and_caches(measured, tmp_path):
    assert _blas.use("auto") == "mkl" and _blas.matmul is _blas._auto_matmul and measured == []
    np.testing.assert_array_equal(_blas.matmul(np.ones((4, 4), np.float32), np.ones((4, 4), np.float32)),
                                  np.full((4, 4), 4, np.float32))
    assert measured == [] and _blas.matmul is _blas._auto_matmul  # small products do not decide
    np.testing.assert_array_equal(_blas.matmul(*_large()), np.full((256, 64), 128, np.float32))
    assert len(measured) == 1 and _blas.matmul is _blas._mkl_matmul
    got = _blas.info()
    assert got["chosen_by"] == "probe" and got["gflops"] == {"numpy": 100.0, "mkl": 200.0}
    assert "numpy 100 GFLOP/s, mkl 200" in got["reason"] and got["measurement"]["conclusive"]
    stored = json.loads((tmp_path / "chainrule" / "blas.json").read_text())["decisions"][_blas._cache_key()]
    # the cache keeps the decision with its figures and reason
    assert stored["name"] == "mkl" and stored["gflops"] == {"numpy": 100.0, "mkl": 200.0} and stored["attempts"] == 1
    assert stored["reason"] == got["reason"] and stored["measurement"] == got["measurement"]
    assert stored["measured"].endswith("UTC") and stored["measurement"]["rounds"] == 5
    # a second auto (a new process, in effect) takes the cached decision without measuring
    _blas.use("numpy")
    _blas.use("auto")
    assert len(measured) == 1 and _blas.matmul is _blas._mkl_matmul
    assert _blas.info()["chosen_by"] == "cache" and str(tmp_path) in _blas.info()["reason"]
    assert _blas.info()["measurement"] == got["measurement"]


def test_an_inconclusive_probe_is_repeated_then_kept(measured, monkeypatch, tmp_path):
    lucky = _trials(200, 400)  # MKL fast in one round only: inconclusive, NumPy kept
    lucky["seconds"]["mkl"] = [[t if r == 0 else t * 2.5 for r, t in enumerate(ts)] for ts in lucky["seconds"]["mkl"]]
    monkeypatch.setattr(_blas, "_measure", lambda *a, **k: measured.append(a) or lucky)
    for attempt in range(1, _blas.PROBE_ATTEMPTS + 1):
        _blas.use("auto")  # a new process, in effect
        got = _blas.info()
        assert len(measured) == attempt and got["name"] == "numpy" and got["chosen_by"] == "probe"
        assert f"probe {attempt} of {_blas.PROBE_ATTEMPTS}" in got["reason"] and "inconclusive" in got["reason"]
    _blas.use("auto")
    assert _blas.info()["chosen_by"] == "cache" and len(measured) == _blas.PROBE_ATTEMPTS
    assert _blas.info()["name"] == "numpy"


def test_a_decision_cached_without_its_figures_is_measured_again(measured, tmp_path):
    # written by the earlier probe (median of 3 wall-clock rounds, no figures): not trusted
    path = tmp_path / "chainrule" / "blas.json"
    path.parent.mkdir()
    path.write_text(json.dumps({"format": 1, "decisions": {_blas._cache_key(): {"name": "numpy", "reason": "old"}}}))
    _blas.use("auto")
    assert _blas.info()["name"] == "mkl" and _blas.info()["chosen_by"] == "probe" and len(measured) == 1


def test_asking_for_info_makes_the_pending_choice(measured):
    _blas.use("auto")
    assert _blas.info()["name"] == "mkl" and len(measured) == 1


@pytest.mark.parametrize("content", ["{not json", "[1, 2]", '{"decisions": 3}',
                                     '{"decisions": {"KEY": {"name": "atlas"}}}'],
                         ids=["not-json", "a-list", "wrong-type", "unknown-name"])
def test_a_corrupt_cache_is_ignored_and_replaced(measured, tmp_path, content):
    path = tmp_path / "chainrule" / "blas.json"
    path.parent.mkdir()
    path.write_text(content.replace("KEY", _blas._cache_key()))
    _blas.use("auto")
    _blas.matmul(*_large())
    assert len(measured) == 1 and _blas.info()["chosen_by"] == "probe"
    assert json.loads(path.read_text())["decisions"][_blas._cache_key()]["name"] == "mkl"


def test_an_unwritable_cache_only_means_measuring_again(measured, tmp_path, monkeypatch):
    blocker = tmp_path / "file"
    blocker.write_text("")
    monkeypatch.setenv("XDG_CACHE_HOME", str(blocker))  # a file where the directory would go
    _blas.use("auto")
    assert _blas.info()["name"] == "mkl" and len(measured) == 1
    _blas.use("auto")
    assert _blas.info()["name"] == "mkl" and len(measured) == 2


def test_the_key_changes_with_the_thread_count(mkl):
    threadpoolctl = pytest.importorskip("threadpoolctl")
    with threadpoolctl.threadpool_limits(1, user_api="blas"):
        one = _blas._cache_key()
    with threadpoolctl.threadpool_limits(2, user_api="blas"):
        two = _blas._cache_key()
    assert one != two and "x1" in one and "x2" in two


def test_auto_without_mkl_is_numpy_without_a_probe(monkeypatch):
    previous = _blas._current()
    monkeypatch.setattr(_blas, "_load", lambda required=False: False)
    monkeypatch.setattr(_blas, "_measure", lambda *a, **k: pytest.fail("no probe without MKL"))
    _blas.use("auto")
    try:
        assert _blas.matmul is np.matmul and "not installed" in _blas.info()["reason"]
    finally:
        monkeypatch.undo()
        _blas.use(previous)


def test_the_real_probe_measures_both(mkl):
    # asked for explicitly: two timed rounds, nothing applied or cached (no figure is asserted: the outcome
    # depends on the machine and its load)
    before = _blas.matmul
    got = _blas.probe(budget=0.0, rounds=(2, 2))
    assert got["name"] in ("mkl", "numpy") and got["chosen_by"] == "probe" and _blas.matmul is before
    assert set(got["gflops"]) == {"numpy", "mkl"} and min(got["gflops"].values()) > 0
    assert got["measurement"]["rounds"] == 2 and got["measurement"]["clock"] in ("thread CPU time", "wall time")


def test_environment_variable_chooses_at_import(tmp_path):
    def run(value):
        env = {**os.environ, "CHAINRULE_BLAS": value, "XDG_CACHE_HOME": str(tmp_path)}
        code = "from chainrule import _blas; i = _blas.info(); print(i['name'], i['chosen_by'])"
        return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    off = run("numpy")
    assert off.returncode == 0 and off.stdout.split() == ["numpy", "CHAINRULE_BLAS"], off.stderr
    bad = run("atlas")
    assert bad.returncode != 0 and "CHAINRULE_BLAS must be 'auto', 'mkl' or 'numpy', got 'atlas'" in bad.stderr
    if _blas._lib is not None:
        assert run("mkl").stdout.split() == ["mkl", "CHAINRULE_BLAS"]
        # auto follows a cached decision for this machine, and CHAINRULE_BLAS=mkl overrides it
        (tmp_path / "chainrule").mkdir()
        entry = {"name": "numpy", "reason": "seeded by the test", "gflops": {"numpy": 2.0, "mkl": 1.0},
                 "measurement": {"conclusive": True}}
        # the key as the subprocess computes it (thread counts in this test process may differ under xdist)
        key = subprocess.run([sys.executable, "-c", "import json; from chainrule import _blas; "
                              "print(json.dumps(_blas._cache_key()))"], capture_output=True, text=True,
                             env={**os.environ, "CHAINRULE_BLAS": "auto", "XDG_CACHE_HOME": str(tmp_path)}, timeout=120)
        (tmp_path / "chainrule" / "blas.json").write_text(json.dumps({"decisions": {json.loads(key.stdout): entry}}))
        assert run("auto").stdout.split() == ["numpy", "cache"]
        assert run("mkl").stdout.split() == ["mkl", "CHAINRULE_BLAS"]


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


def test_the_probe_interleaves_the_libraries_and_honours_its_round_limits(mkl, monkeypatch):
    # fake products and a fake clock (each call "takes" 1 tick): only the schedule is checked, nothing is timed
    calls = []
    monkeypatch.setattr(np, "matmul", lambda a, b: calls.append("numpy"))
    monkeypatch.setattr(_blas, "_mkl_matmul", lambda a, b: calls.append("mkl"))
    ticks = iter(range(10 ** 6))
    monkeypatch.setattr(_blas, "_clock", lambda: ("fake clock", lambda: next(ticks)))
    n = len(_blas.PROBE_PRODUCTS)
    got = _blas._measure(budget=0.0, rounds=(3, 9))  # budget spent at once: the minimum rounds
    assert got["clock"] == "fake clock"
    assert {len(ts) for lib in ("numpy", "mkl") for ts in got["seconds"][lib]} == {3}
    warmup, timed = calls[:2 * n], calls[2 * n:]
    assert warmup == ["numpy"] * n + ["mkl"] * n
    # every product by both libraries back to back, the one going first alternating round by round
    assert timed == (["numpy", "mkl"] * n + ["mkl", "numpy"] * n) + ["numpy", "mkl"] * n
    calls.clear()
    got = _blas._measure(budget=1e9, rounds=(3, 4))  # budget never spent: the maximum
    assert {len(ts) for ts in got["seconds"]["mkl"]} == {4} and len(calls) == 2 * n + 4 * 2 * n
