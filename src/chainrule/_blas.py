"""Matrix products through Intel MKL when it is installed (``pip install chainrule[mkl]``), else NumPy.

NumPy's wheels multiply matrices with OpenBLAS; PyTorch's CPU wheels with MKL. On the products
of the lecture's MLPs (784-512-512-10, one thread) OpenBLAS is slower than MKL
(``bench/bench_gemm.py``; figures in docs/performance.md), which is most of what separated a chainrule training step from
PyTorch's. PyPI's ``mkl`` wheel ships MKL's single runtime library ``libmkl_rt``; this module
calls its ``cblas_sgemm`` / ``cblas_dgemm`` through :mod:`ctypes` (which releases the GIL), for
2-D float32/float64 products of at least :data:`MIN_MACS` multiply-adds (:data:`MIN_MACS_ONE_THREAD`
when MKL runs on one thread). Smaller products, other
dtypes, batched operands and layouts BLAS cannot take without a copy go to ``np.matmul``: on small
products the foreign call's few microseconds outweigh MKL's faster kernel.

:func:`matmul` is a drop-in for ``np.matmul``: same values up to float rounding (a different
summation order), same shape and dtype, a fresh C-contiguous result. Transposed operands cost
nothing, as in NumPy: a C-contiguous or F-contiguous operand (or a row-/column-strided view with a
unit inner stride) is passed with BLAS's transpose flag.

MKL's threads follow its own rules (``MKL_NUM_THREADS``, else one per core) and threadpoolctl's
``threadpool_limits``, which sees ``libmkl_rt`` once it is loaded. Two thread pools (OpenBLAS's
pthreads, MKL's OpenMP) spin-waiting on the same cores slow each other down badly, hence
:data:`MIN_MACS`; the same can happen with your own multi-threaded NumPy products in between
(``OPENBLAS_NUM_THREADS=1``, or threadpoolctl's
``ThreadpoolController().select(internal_api="openblas").limit(limits=1)``, avoids it).
**Which library, by measurement.** Neither library is faster everywhere: on Intel CPUs MKL's sgemm
beats NumPy's OpenBLAS on the lecture's products, on AMD CPUs OpenBLAS's own kernels can run them at
twice MKL's rate. So with ``CHAINRULE_BLAS=auto`` (the default) and the ``mkl`` wheel installed in the
running environment, the choice is a one-time probe (:func:`probe`), made at the first product MKL could
take (never at import). The probe times both libraries' sgemm on the MLP's products (forward and both
gradient layouts) in interleaved rounds, the library going first alternating, 5-15 rounds in ~0.4 s, on
this thread's CPU time when both run on one thread (time another process takes from us is not
counted), and keeps each product's *best* round: load only ever adds time, so the minimum is the least
disturbed figure (a median of 3 wall-clock rounds flipped with another process on a core). MKL is
chosen only when it is more than :data:`MARGIN` faster *and* the faster one in :data:`AGREEMENT` of the
paired trials (one product, one round, back to back); otherwise the default, NumPy's own BLAS (no foreign call, no second thread
pool), is kept. The decision is cached in ``$XDG_CACHE_HOME/chainrule/blas.json`` (else
``~/.cache/chainrule/``) with its figures (each library's rate per product, rounds, clock, load
average, date) and its reason, under a key of the CPU model, both libraries' versions, OpenBLAS's
kernel and both thread counts, so a new NumPy, MKL, CPU or thread count measures again; an
inconclusive probe (best times and rounds disagree) is measured again by the next processes, up to
:data:`PROBE_ATTEMPTS` in all. ``cr.blas_info()`` says what was chosen and why (``reason``, ``gflops``,
``measurement``). Without the wheel, NumPy (nothing to choose). ``CHAINRULE_BLAS=numpy`` or
``cr.set_blas("numpy")`` turns MKL off; ``CHAINRULE_BLAS=mkl`` / ``cr.set_blas("mkl")`` forces it, also
taking an MKL found elsewhere (the loader's path, the base interpreter's prefix), and makes a missing MKL
an error instead of a silent fallback; ``cr.set_blas("auto")`` goes back to the measured choice (the
cache, else a probe).
"""

from __future__ import annotations

import ctypes
import json
import os
import sys
import time

import numpy as np

__all__ = ["info", "probe", "use"]  # info, use: re-exported as cr.blas_info, cr.set_blas

#: Products with fewer multiply-adds (``m * n * k``) than this go to NumPy when MKL may use more
#: than one thread. It is OpenBLAS's own threading threshold (65536 x 4): below it OpenBLAS runs on
#: the calling thread, above it it wakes its worker threads, which then spin-wait and fight MKL's
#: OpenMP threads for the cores (with the threshold at 2^20, a 2-thread MLP step at batch 128 was
#: several times slower; docs/performance.md has the figures). So every product that OpenBLAS would
#: thread goes to MKL.
MIN_MACS = 1 << 18
#: The threshold with one thread, where nothing spins: the measured crossover. MKL's call costs a
#: few microseconds, so below ~2^20 multiply-adds NumPy is faster and above it MKL is
#: (``bench/bench_gemm.py``; the products measured are in docs/performance.md).
MIN_MACS_ONE_THREAD = 1 << 20

_ROW_MAJOR, _NO_TRANS, _TRANS = 101, 111, 112
_lib: ctypes.CDLL | None = None
_path: str | None = None
_GEMM: dict = {}  # dtype -> cblas_?gemm
_max_threads = None  # MKL_Get_Max_Threads, once loaded


def _find_mkl(system: bool = False) -> str | None:
    """Path of ``libmkl_rt`` from the ``mkl`` wheel installed in *this* environment (its data files land
    in ``sys.prefix``'s ``lib/``; the wheel's metadata lists them), else None. ``system``: also look
    where the loader looks and in the base interpreter's prefix (an MKL nobody installed for this
    environment is used only when asked for by name: ``CHAINRULE_BLAS=mkl`` or ``set_blas("mkl")``)."""
    import glob
    prefixes = (sys.prefix, sys.base_prefix) if system else (sys.prefix,)
    for prefix in prefixes:
        hits = sorted(glob.glob(os.path.join(prefix, "lib", "libmkl_rt.so*")) +
                      glob.glob(os.path.join(prefix, "Library", "bin", "mkl_rt*.dll")))
        if hits:
            return hits[0]
    from importlib import metadata
    try:
        for f in metadata.distribution("mkl").files or ():
            if f.name.startswith(("libmkl_rt", "mkl_rt")):
                return str(f.locate())
    except metadata.PackageNotFoundError:
        pass
    if system:
        import ctypes.util
        return ctypes.util.find_library("mkl_rt")
    return None


def _load(required: bool = False) -> bool:
    """Bind ``cblas_sgemm`` / ``cblas_dgemm`` from MKL; True when it is there. ``required`` (MKL asked
    for by name): also look outside this environment, and raise ImportError instead of returning False."""
    global _lib, _path
    if _lib is not None:
        return True
    path = _find_mkl(system=required)
    try:
        lib = ctypes.CDLL(path) if path else None
    except OSError:
        lib = None
    if lib is None:
        if required:
            raise ImportError("MKL's runtime library libmkl_rt was not found: pip install 'chainrule[mkl]'")
        return False
    ptr, int_ = ctypes.c_void_p, ctypes.c_int
    for dtype, name, scalar in ((np.float32, "cblas_sgemm", ctypes.c_float),
                                (np.float64, "cblas_dgemm", ctypes.c_double)):
        fn = getattr(lib, name)
        fn.argtypes = [int_] * 6 + [scalar, ptr, int_, ptr, int_, scalar, ptr, int_]
        fn.restype = None
        _GEMM[np.dtype(dtype)] = fn
    global _max_threads
    _max_threads = lib.MKL_Get_Max_Threads  # cheap enough per product; follows MKL_NUM_THREADS and threadpool_limits
    _max_threads.argtypes, _max_threads.restype = [], ctypes.c_int
    lib.MKL_Get_Version_String.argtypes, lib.MKL_Get_Version_String.restype = [ctypes.c_char_p, ctypes.c_int], None
    _lib, _path = lib, path
    return True


def _operand(a: np.ndarray, rows: int, cols: int, item: int) -> tuple[int, int] | None:
    """(transpose flag, leading dimension) that describe the (rows, cols) matrix ``a`` to row-major
    BLAS without a copy, or None when its strides do not allow it."""
    s0, s1 = a.strides
    if s1 == item and s0 % item == 0 and s0 >= cols * item:
        return _NO_TRANS, s0 // item
    if s0 == item and s1 % item == 0 and s1 >= rows * item:
        return _TRANS, s1 // item
    return None


def _mkl_matmul(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``np.matmul(a, b)``, by MKL's GEMM when the product is 2-D, float32/64 and at least
    :data:`MIN_MACS` multiply-adds (:data:`MIN_MACS_ONE_THREAD` on one thread); by NumPy otherwise.
    ``C = A B`` with ``A`` (m, k), ``B`` (k, n): ``C_ij = sum_l A_il B_lj``."""
    if a.ndim != 2 or b.ndim != 2:
        return np.matmul(a, b)
    m, k = a.shape
    n = b.shape[1]
    fn = _GEMM.get(a.dtype)
    macs = m * n * k
    if macs < MIN_MACS or fn is None or b.dtype != a.dtype or b.shape[0] != k or macs < _min_macs():
        return np.matmul(a, b)  # NumPy also raises the shape error
    item = a.itemsize
    pa, pb = _operand(a, m, k, item), _operand(b, k, n, item)
    if pa is None or pb is None or max(m, n, k, pa[1], pb[1]) >= 1 << 31:  # LP64 MKL: 32-bit sizes
        return np.matmul(a, b)
    out = np.empty((m, n), a.dtype)
    fn(_ROW_MAJOR, pa[0], pb[0], m, n, k, 1.0, a.ctypes._data, pa[1], b.ctypes._data, pb[1], 0.0, out.ctypes._data, n)
    return out


def _min_macs() -> int:
    """The smallest product MKL takes at its current thread count (:data:`MIN_MACS`)."""
    return MIN_MACS if _max_threads() > 1 else MIN_MACS_ONE_THREAD



#: MKL is chosen by the probe only when its best-of sgemm rate is more than this factor above NumPy's.
#: Below it the default, NumPy's own BLAS, is kept: it needs no foreign call and no second thread pool,
#: and a smaller lead is within what a loaded machine moves a best-of measurement.
MARGIN = 1.10
#: ... and only when MKL was also the faster one in at least this share of the paired trials (the same
#: product in the same round, back to back): a lead that shows in the best times but not pair after pair
#: is noise, and the default is kept.
AGREEMENT = 2 / 3
#: The probe's products (m, k, n, layout): the MLP 784-512-512-10 step's at batches 1024 and 128, as
#: the forward pass (``x W^T``: "NT"), the weight gradient (``G^T x``: "TN") and a plain product ("NN").
PROBE_PRODUCTS = tuple((m, k, n, lay) for m, k, n in ((1024, 784, 512), (128, 512, 512))
                       for lay in ("NN", "NT", "TN"))
#: Timed rounds of the probe: at least the first, at most the second.
PROBE_ROUNDS = (5, 15)
#: The probe's wall-clock budget: past its minimum rounds it stops repeating once this is spent.
PROBE_BUDGET = 0.4
#: An inconclusive probe (the rounds disagreed) keeps the default and is cached as such, but measured
#: again by the next processes, up to this many probes in all; after that the cached default stays.
PROBE_ATTEMPTS = 3

#: The product every 2-D matrix product of chainrule goes through (``ops.matmul``, ``ops.linear`` and
#: their gradients): :func:`_mkl_matmul` when MKL is in use, ``np.matmul`` itself with NumPy (so that
#: path costs no extra call), :func:`_auto_matmul` until the measured choice is made.
matmul = np.matmul
#: How the current choice was made: chosen_by ('CHAINRULE_BLAS', 'set_blas', 'probe', 'cache',
#: 'default'), reason (one sentence) and gflops ({'numpy': ..., 'mkl': ...} measured, or None).
#: measurement: the probe's figures when a probe decided (rounds, clock, per-product rates; see _decide).
_choice: dict = {"chosen_by": "default", "reason": "not chosen yet", "gflops": None, "measurement": None}


def _auto_matmul(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``np.matmul`` until the first product MKL could take; that one makes the measured choice
    (cache, else :func:`probe`) and every product from then on goes to the chosen library."""
    if a.ndim == 2 and b.ndim == 2 and a.dtype in _GEMM and a.shape[0] * a.shape[1] * b.shape[1] >= MIN_MACS:
        _choose_by_measurement()
        return matmul(a, b)
    return np.matmul(a, b)


def _operands(m: int, k: int, n: int, layout: str, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """float32 (m, k) and (k, n) operands, each a transposed view of a C array where ``layout`` says T."""
    a = rng.standard_normal((k, m), dtype=np.float32).T if layout[0] == "T" else rng.standard_normal((m, k), dtype=np.float32)
    b = rng.standard_normal((n, k), dtype=np.float32).T if layout[1] == "T" else rng.standard_normal((k, n), dtype=np.float32)
    return a, b


def _clock() -> tuple[str, object]:
    """The probe's clock: this thread's CPU time when both libraries multiply on the calling thread (one
    thread each): time another process takes from us is not counted. Wall time otherwise (the workers'
    CPU time is not this thread's, and summing the process's would count their spin-waiting)."""
    if _max_threads is not None and _max_threads() == 1 and _openblas_core()[1] in (1, None):
        return "thread CPU time", time.thread_time
    return "wall time", time.perf_counter


def _measure(budget: float = PROBE_BUDGET, rounds: tuple[int, int] = PROBE_ROUNDS) -> dict:
    """Time each :data:`PROBE_PRODUCTS` product with both libraries, interleaved: ``{'clock': name,
    'seconds': {'numpy': [[round 0, round 1, ...] per product], 'mkl': [...]}}``. After an untimed
    warm-up round (MKL's first call loads its kernels), every round runs every product with both
    libraries back to back, the one going first alternating round by round, so load from other
    processes falls on both alike; at least ``rounds[0]`` rounds, more until ``budget`` seconds of wall
    time are spent, at most ``rounds[1]``."""
    rng = np.random.default_rng(0)
    pairs = [_operands(*p, rng) for p in PROBE_PRODUCTS]
    libs = [("numpy", np.matmul), ("mkl", _mkl_matmul)]
    for _, fn in libs:
        for a, b in pairs:
            fn(a, b)
    clock_name, clock = _clock()
    seconds: dict[str, list[list[float]]] = {name: [[] for _ in pairs] for name, _ in libs}
    start = time.perf_counter()
    for r in range(rounds[1]):
        for i, (a, b) in enumerate(pairs):
            for name, fn in libs[::-1] if r % 2 else libs:
                t0 = clock()
                fn(a, b)
                seconds[name][i].append(clock() - t0)
        if r + 1 >= rounds[0] and time.perf_counter() - start > budget:
            break
    return {"clock": clock_name, "seconds": seconds}


def _best_rate(seconds: list[list[float]], flops: list[float]) -> float:
    """GFLOP/s over all products, each at its best round."""
    return sum(flops) / sum(min(ts) for ts in seconds) / 1e9


def _mkl_share(seconds: dict, flops: list[float]) -> float:
    """The share of the paired trials (one product, one round, both libraries back to back, so under the
    same load) in which MKL was faster, each pair weighted by its product's FLOPs."""
    won = sum(f * sum(m < n for m, n in zip(ms, ns)) for f, ms, ns in zip(flops, seconds["mkl"], seconds["numpy"]))
    return won / sum(f * len(ns) for f, ns in zip(flops, seconds["numpy"]))


def _decide(measured: dict) -> tuple[str, dict]:
    """The library to use from :func:`_measure`'s timings. Each library's rate is total FLOPs over the sum
    of each product's *best* round (load only ever adds time, so the minimum is the least disturbed
    figure). MKL is chosen when that rate is more than :data:`MARGIN` above NumPy's *and* it was faster
    in at least :data:`AGREEMENT` of the paired trials (:func:`_mkl_share`); otherwise NumPy (the default) is kept, and
    when the best times said MKL but the rounds disagreed, the result is inconclusive (measured again by
    the next process, :data:`PROBE_ATTEMPTS`). Returns (name, {'chosen_by', 'reason', 'gflops', 'measurement'})."""
    flops = [2.0 * m * k * n for m, k, n, _ in PROBE_PRODUCTS]
    seconds = measured.get("seconds", {}) if isinstance(measured, dict) else {}
    if set(seconds) != {"numpy", "mkl"} or any(
            len(v) != len(flops) or len({len(ts) for ts in v}) != 1 or min(min(ts, default=0) for ts in v) <= 0
            for v in seconds.values()) or len(seconds["numpy"][0]) != len(seconds["mkl"][0]):
        raise ValueError(f"blas probe: want seconds for numpy and mkl, {len(flops)} products with the same number "
                         f"of positive round timings each, got {measured!r}")
    numpy_best, mkl_best = _best_rate(seconds["numpy"], flops), _best_rate(seconds["mkl"], flops)
    rounds, share = len(seconds["numpy"][0]), _mkl_share(seconds, flops)
    ratio = mkl_best / numpy_best
    conclusive = True
    if ratio > MARGIN and share >= AGREEMENT:
        name, rule = "mkl", f"mkl is more than {MARGIN:g}x numpy and faster in {share:.0%} of the paired trials"
    elif ratio > MARGIN:
        name, conclusive = "numpy", False
        rule = (f"inconclusive: mkl is more than {MARGIN:g}x numpy at best but faster in only {share:.0%} of the "
                "paired trials, so the default (numpy) is kept")
    else:
        name, rule = "numpy", f"mkl is not more than {MARGIN:g}x numpy, so the default (numpy) is kept"
    clock = measured.get("clock", "?")
    gflops = {"numpy": round(numpy_best, 1), "mkl": round(mkl_best, 1)}
    reason = (f"measured sgemm on the MLP's products, best of {rounds} interleaved rounds ({clock}): "
              f"numpy {gflops['numpy']:g} GFLOP/s, mkl {gflops['mkl']:g}; {rule}")
    products = {f"{m}x{k}x{n} {lay}": {lib: round(f / min(seconds[lib][i]) / 1e9, 1) for lib in ("numpy", "mkl")}
                for i, ((m, k, n, lay), f) in enumerate(zip(PROBE_PRODUCTS, flops))}
    measurement = {"rounds": rounds, "clock": clock, "mkl_faster_share": round(share, 3), "ratio": round(ratio, 3),
                   "conclusive": conclusive, "products": products}
    return name, {"chosen_by": "probe", "reason": reason, "gflops": gflops, "measurement": measurement}


def probe(budget: float = PROBE_BUDGET, rounds: tuple[int, int] = PROBE_ROUNDS) -> dict:
    """Measure both libraries now (loads MKL; raises ImportError without it) and return the decision
    ``{'name', 'chosen_by', 'reason', 'gflops', 'measurement'}`` without applying or caching it."""
    _load(required=True)
    name, why = _decide(_measure(budget, rounds))
    return {"name": name, **why}


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            head = f.read(4096)
        fields = dict((k.strip(), v) for k, v in (line.split(":", 1) for line in head.split("\n\n")[0].splitlines()
                                                   if ":" in line))
        return " ".join(fields.get(k, "?").strip() for k in ("vendor_id", "model name", "cpu family", "model"))
    except OSError:
        import platform
        return platform.processor() or platform.machine()


def _openblas_core() -> tuple[str | None, int | None]:
    """OpenBLAS's kernel name and thread count through its own entry points (None, None when NumPy's BLAS
    is not an OpenBLAS that exports them). ``OPENBLAS_CORETYPE`` changes the kernel."""
    import glob
    libs = glob.glob(os.path.join(os.path.dirname(os.path.dirname(np.__file__)), "numpy.libs", "*openblas*"))
    try:
        lib = ctypes.CDLL(libs[0]) if libs else None
    except OSError:
        lib = None
    for prefix, suffix in (("scipy_openblas_", "64_"), ("openblas_", "64_"), ("openblas_", ""), ("scipy_openblas_", "")):
        core, threads = (getattr(lib, f"{prefix}{what}{suffix}", None) for what in ("get_corename", "get_num_threads"))
        if core is not None and threads is not None:
            core.restype, threads.restype = ctypes.c_char_p, ctypes.c_int
            return core().decode(errors="replace"), threads()
    return None, None


def _openblas() -> str:
    """NumPy's BLAS as built (name, version) and, for OpenBLAS, the kernel it runs and its thread count
    (a different kernel or thread count is a different cache key)."""
    blas = np.__config__.CONFIG.get("Build Dependencies", {}).get("blas", {})
    out = f"{blas.get('name', '?')} {blas.get('version', '?')}"
    core, threads = _openblas_core()
    return out if core is None else f"{out} {core} x{threads}"


def _cache_key() -> str:
    """CPU model, NumPy's BLAS (version, kernel, threads), MKL's version and threads: a change measures again."""
    buf = ctypes.create_string_buffer(256)
    _lib.MKL_Get_Version_String(buf, len(buf))
    return (f"{_cpu_model()} | {os.cpu_count()} cpus | numpy {np.__version__} {_openblas()} | "
            f"mkl {buf.value.decode(errors='replace').strip()} x{_max_threads()}")


def _cache_path() -> str:
    root = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(root, "chainrule", "blas.json")


def _read_cache() -> dict:
    """The cache file's decisions ({key: {'name', 'reason', 'gflops'}}), {} when missing or unreadable:
    a corrupt or foreign file is ignored (and replaced at the next write), never an error."""
    try:
        with open(_cache_path()) as f:
            data = json.load(f)
        entries = data["decisions"]
        return {k: v for k, v in entries.items() if isinstance(v, dict) and v.get("name") in ("mkl", "numpy")}
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return {}


def _write_cache(key: str, entry: dict) -> None:
    """Add ``entry`` under ``key``, atomically (a temporary file renamed over it); a cache directory that
    cannot be written (read-only home) only means measuring again next time."""
    path = _cache_path()
    entries = {**_read_cache(), key: entry}
    try:
        os.makedirs(os.path.dirname(path), exist_ok=True)
        tmp = f"{path}.{os.getpid()}.tmp"
        with open(tmp, "w") as f:
            json.dump({"format": 1, "decisions": entries}, f, indent=1, sort_keys=True)
        os.replace(tmp, path)
    except OSError:
        pass


def _usable(entry: dict | None) -> bool:
    """A cached decision to apply: a conclusive one, or an inconclusive one after :data:`PROBE_ATTEMPTS` probes.
    An entry without the probe's figures (written before they were recorded) is measured again."""
    measurement = entry.get("measurement") if isinstance(entry, dict) else None
    if not isinstance(measurement, dict):  # none, or made by the earlier median-of-3 probe: measure again
        return False
    return bool(measurement.get("conclusive", False)) or entry.get("attempts", 1) >= PROBE_ATTEMPTS


def _cached_choice() -> bool:
    """Apply the cached decision for this machine and libraries, if there is a usable one; True when applied."""
    hit = _read_cache().get(_cache_key())
    if not _usable(hit):
        return False
    where = f"cached in {_cache_path()}; delete it to measure again"
    _apply(hit["name"], "cache", f"{hit.get('reason', '')} ({where})", hit.get("gflops"), hit.get("measurement"))
    return True


def _choose_by_measurement() -> None:
    """The ``auto`` choice with MKL loaded: the cached decision, else :func:`probe`, then cached with its
    figures, its reason, when and under what load it was measured, and how many probes it took."""
    if _cached_choice():
        return
    key = _cache_key()
    previous = _read_cache().get(key) or {}
    decision = probe()
    entry = {k: decision[k] for k in ("name", "reason", "gflops", "measurement")}
    entry["measured"] = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    entry["load_average"] = round(os.getloadavg()[0], 2) if hasattr(os, "getloadavg") else None
    entry["attempts"] = previous.get("attempts", 0) + 1
    _write_cache(key, entry)
    reason = decision["reason"]
    if not decision["measurement"]["conclusive"]:
        left = PROBE_ATTEMPTS - entry["attempts"]
        reason += f" (probe {entry['attempts']} of {PROBE_ATTEMPTS}" + (
            f"; the next {left} process(es) measure again)" if left > 0 else "; kept from now on)")
    _apply(decision["name"], "probe", reason, decision["gflops"], decision["measurement"])


def _apply(name: str, chosen_by: str, reason: str, gflops: dict | None = None, measurement: dict | None = None) -> None:
    global matmul
    matmul = {"mkl": _mkl_matmul, "numpy": np.matmul, "auto": _auto_matmul}[name]
    _choice.update(chosen_by=chosen_by, reason=reason, gflops=gflops, measurement=measurement)


def _auto(chosen_by: str) -> None:
    """``auto``: NumPy without an MKL in this environment; else the cached choice, else the probe at the
    first product MKL could take."""
    if not _load():
        _apply("numpy", chosen_by, "MKL is not installed in this environment (pip install 'chainrule[mkl]')")
    elif not _cached_choice():
        _apply("auto", chosen_by, "to be measured at the first product MKL could take")


def _current() -> str:
    return {np.matmul: "numpy", _mkl_matmul: "mkl"}.get(matmul, "auto")


def use(name: str) -> str:
    """Switch the library for matrix products: 'mkl' (raises ImportError when MKL is missing), 'numpy',
    or 'auto' (the measured choice: cached, else probed at the first large product). Returns the previous
    name ('auto' while the measured choice is still to be made). ``CHAINRULE_BLAS`` sets it at import."""
    if name not in ("mkl", "numpy", "auto"):
        raise ValueError(f"blas: name must be 'mkl', 'numpy' or 'auto', got {name!r}")
    previous = _current()
    _select(name, "set_blas", f"set_blas({name!r})")
    return previous


def _select(name: str, chosen_by: str, reason: str) -> None:
    """Make ``name`` ('auto', 'mkl' or 'numpy') the library, recording who chose it and why."""
    if name == "auto":
        _auto(chosen_by)
        return
    if name == "mkl":
        _load(required=True)
    _apply(name, chosen_by, reason)


def info() -> dict:
    """Which library multiplies chainrule's matrices, and why: ``{'name': 'mkl' | 'numpy', 'path',
    'version', 'min_macs', 'threads', 'chosen_by', 'reason', 'gflops', 'measurement'}`` (``path``/``version``/``threads``
    of MKL's runtime, None with NumPy; ``min_macs``: the smallest product MKL takes now, which depends on
    its thread count; ``chosen_by``: 'probe', 'cache', 'CHAINRULE_BLAS', 'set_blas' or 'default';
    ``gflops``: each library's best-of sgemm rate when a probe decided, from it or from the cache;
    ``measurement``: that probe's figures: rounds, clock, ratio, MKL's share of the paired trials, conclusive,
    GFLOP/s per product). Asking makes a pending ``auto`` choice (from the cache, else by a probe)."""
    if matmul is _auto_matmul:
        _choose_by_measurement()
    why = dict(_choice)
    if matmul is np.matmul:
        return {"name": "numpy", "path": None, "version": None, "min_macs": None, "threads": None, **why}
    buf = ctypes.create_string_buffer(256)
    _lib.MKL_Get_Version_String(buf, len(buf))
    return {"name": "mkl", "path": _path, "version": buf.value.decode(errors="replace").strip(),
            "threads": _max_threads(), "min_macs": _min_macs(), **why}


def _from_environment() -> None:
    want = os.environ.get("CHAINRULE_BLAS", "auto").lower()
    if want not in ("auto", "mkl", "numpy"):
        raise ValueError(f"CHAINRULE_BLAS must be 'auto', 'mkl' or 'numpy', got {want!r}")
    _select(want, "default" if want == "auto" else "CHAINRULE_BLAS", f"CHAINRULE_BLAS={want}")


_from_environment()
