"""chainrule benchmark suite: ``python bench/run.py`` (``--quick`` for a short run).

Every workload runs all its contenders in this one process on the same data and initial weights. Timing
alternates between libraries (round-robin, the starting library rotating each round) so that noise from
other processes hits every library alike; each number is the median over all timed steps (tiny steps are
timed in blocks and divided). Ratios are chainrule / peer: below 1.0 means chainrule is faster.
NumPy's BLAS and PyTorch use the same thread count (``--threads``, default 1), printed in the machine line.
Prints markdown; ``--md PATH`` also writes it to a file.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import shutil
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

import workloads as W  # noqa: E402

CLOCK = "cpu"  # which clock the medians and ratios use: "cpu" (process CPU time) or "wall"; see --clock


# ----- machine line -------------------------------------------------------------------------------
def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def blas_line() -> str:
    from threadpoolctl import threadpool_info
    # NumPy's own BLAS first: chainrule[mkl] loads MKL into the process too (reported separately)
    infos = sorted((i for i in threadpool_info() if i.get("user_api") == "blas"),
                   key=lambda i: "numpy" not in str(i.get("filepath", "")))
    if not infos:
        return "unknown (threadpoolctl found no BLAS)"
    info = infos[0]
    return f"{info.get('internal_api')} {info.get('version')} ({info.get('architecture')}, {info.get('threading_layer')})"


def sgemm_peak(n: int = 2048, reps: int = 7) -> dict:
    """Median GFLOP/s of an n^3 float32 matmul through each of ``workloads.sgemm_probes`` (NumPy's BLAS,
    PyTorch, and chainrule's own products when they use MKL), alternating, keyed 'NumPy', 'torch', ..."""
    runs = {c.name.split()[-1]: c.step for c in W.sgemm_probes(n)}
    times = {k: [] for k in runs}
    for f in runs.values():
        f()
    clock = time.process_time if CLOCK == "cpu" else time.perf_counter
    for _ in range(reps):  # alternate here too
        for k, f in runs.items():
            t0 = clock()
            f()
            times[k].append(clock() - t0)
    return {k: 2 * n ** 3 / statistics.median(ts) / 1e9 for k, ts in times.items()}


def code_line() -> str:
    """Which chainrule was measured: the commit, and whether src/ had uncommitted changes."""
    import subprocess
    root = Path(__file__).resolve().parents[1]
    try:
        head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=root, capture_output=True, text=True,
                              timeout=10).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--", "src"], cwd=root, capture_output=True,
                               text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "chainrule: unknown commit"
    return f"chainrule at commit {head}" + (" plus uncommitted changes in src/" if dirty else "")


def machine_line(threads: int, peak: dict) -> str:
    import torch
    clock = "process CPU time" if CLOCK == "cpu" else "wall time"
    return (f"{dt.datetime.now(dt.timezone.utc):%Y-%m-%d %H:%M} UTC; {cpu_model()}, {os.cpu_count()} cores "
            f"(shared, noisy); Python {platform.python_version()}, NumPy {np.__version__} on {blas_line()}, "
            f"torch {torch.__version__} (MKL); threads: {threads} for NumPy BLAS (threadpoolctl) and torch "
            f"(set_num_threads); chainrule's matrix products: {chainrule_blas_line()}; clock: {clock}; "
            f"sgemm 2048^3 float32: " + ", ".join(f"{k} {v:.0f} GFLOP/s" for k, v in peak.items()) +
            f"; load average at start {os.getloadavg()[0]:.1f}")


def chainrule_blas_line() -> str:
    from chainrule import _blas
    info = _blas.info()
    why = f"chosen by {info['chosen_by']}: {info['reason']}"
    if info["name"] == "numpy":
        return f"NumPy's BLAS ({why})"
    version = (info["version"] or "").split(" Version ")[-1].split("-")[0] or "?"
    return (f"MKL {version} through ctypes from chainrule[mkl] ({info['threads']} thread(s), threadpoolctl) for "
            f"products of >= 2^{info['min_macs'].bit_length() - 1} multiply-adds, NumPy below ({why})")


# ----- timing -------------------------------------------------------------------------------------
def time_workload(w: W.Workload, rounds: int, blocks: int, warmup: int) -> dict:
    """Round-robin timing. Returns name -> list of per-step seconds (or per-job seconds and accuracies)."""
    live = [c for c in w.contenders if c.step is not None]
    res = {c.name: {"t": [], "wall": [], "cpu": [], "acc": []} for c in live}
    for c in live:  # jobs too: the first run pays one-time costs (torch's op dispatch, imports)
        for i in range(warmup):
            t0 = time.perf_counter()
            c.step()
            if i == 0 and c.first is None:
                c.first = time.perf_counter() - t0
    n = len(live)
    for r in range(rounds):
        order = live[r % n:] + live[:r % n] if n else []
        for c in order:
            if w.reset and c.factory is not None and c.lib != "probe":
                c.step = c.factory()  # fresh weights and optimizer state (untimed), then one untimed step
                c.step()
            for _ in range(c.blocks or blocks):
                c0, t0 = time.process_time(), time.perf_counter()
                for _ in range(w.block):
                    v = c.step()
                wall, cpu = (time.perf_counter() - t0) / w.block, (time.process_time() - c0) / w.block
                res[c.name]["wall"].append(wall)
                res[c.name]["cpu"].append(cpu)
                res[c.name]["t"].append(cpu if CLOCK == "cpu" else wall)
                if w.job:
                    res[c.name]["acc"].append(v)
    return res


def _q(xs, q):
    return float(np.quantile(xs, q))


def fmt_time(sec: float, unit: str) -> str:
    scale = {"s": 1, "ms": 1e3, "us": 1e6}[unit]
    v = sec * scale
    return f"{v:.3g}" if v < 100 else f"{v:.0f}"


def _ref_for(w: W.Workload, name: str, med: dict) -> str | None:
    """Which chainrule row a peer row is compared with (engine-only rows with engine-only rows)."""
    if name.endswith("fwd+bwd"):
        return "chainrule fwd+bwd"
    if w.job and name == "sklearn" and "chainrule MLPClassifier" in med:
        return "chainrule MLPClassifier"
    return "chainrule"


def render(w: W.Workload, res: dict, peak_gflops: float) -> tuple[str, dict]:
    """A markdown table for one workload, and the chainrule/peer ratios for the summary."""
    lines = [f"### {w.title}", ""]
    if w.data_source:
        lines += [f"Data: {w.data_source}.", ""]
    med = {k: statistics.median(v["t"]) for k, v in res.items()}
    probes = [c for c in w.contenders if c.lib == "probe" and c.name in med]
    if probes:  # the peak measured in the same round-robin as the steps
        peak_gflops = max(c.gflop / med[c.name] for c in probes)
    other = "wall" if CLOCK == "cpu" else "cpu"
    cols = ["contender", "how", f"median {w.unit} ({CLOCK})", "IQR", f"{other} median", "chainrule / this"]
    if w.flops:
        cols += ["GFLOP/s", "% of sgemm peak"]
    if w.job:
        cols += ["test acc (median over seeds)"]
    firsts = any(c.first is not None and c.lib != "probe" for c in w.contenders)
    if firsts:
        cols += ["first call (s, wall)"]
    lines += ["| " + " | ".join(cols) + " |", "|" + "---|" * 2 + "---:|" * (len(cols) - 2)]
    if w.job:
        lines.insert(-2, "Run n uses seed n (initial weights, shuffling, random_state), the same seeds for every library; "
                         "chainrule's hand loop, train.fit, torch and mygrad share the initial weights of each seed, the "
                         "two MLPClassifiers initialise themselves.\n")
    ratios = {}
    for c in w.contenders:
        if c.step is None:
            lines.append(f"| {c.name} | pending: {c.pending} |" + " |" * (len(cols) - 2))
            continue
        ts = res[c.name]["t"]
        row = [c.name, c.note, fmt_time(med[c.name], w.unit),
               f"{fmt_time(_q(ts, .25), w.unit)}-{fmt_time(_q(ts, .75), w.unit)}",
               fmt_time(statistics.median(res[c.name][other]), w.unit)]
        if c.lib == "probe":
            g = c.gflop / med[c.name]
            row += ["", f"{g:.0f}", "(peak)" if g == peak_gflops else f"{100 * g / peak_gflops:.0f}%"]
            lines.append("| " + " | ".join(row + [""] * (len(cols) - len(row))) + " |")
            continue
        if c.lib == "chainrule":
            base = "sklearn" if "MLPClassifier" in c.name else w.baseline
            if c.name in ("chainrule", "chainrule fwd+bwd") or base not in med:
                cell = "(reference)"
            else:
                r = med[c.name] / med[base]
                ratios[(c.name, base)] = r
                cell = f"{r:.2f} (this / {base})"
        else:
            ref = _ref_for(w, c.name, med)
            r = med[ref] / med[c.name] if ref in med else None
            if r is not None:
                ratios[(ref, c.name)] = r
            cell = f"**{r:.2f}**" if r is not None else ""
        row.append(cell)
        lines.append("| " + " | ".join(row + _extra_cells(w, c, res, med[c.name], peak_gflops, firsts)) + " |")
    lines += [""] + [f"- {line}" for line in w.checks]
    return "\n".join(lines) + "\n", {"med": med, "ratios": ratios, "res": res, "peak": peak_gflops}


def _extra_cells(w: W.Workload, c: W.Contender, res: dict, med: float, peak_gflops: float, firsts: bool) -> list:
    """GFLOP/s and % of peak, test accuracy, first-call time: the columns this workload has."""
    row = []
    if w.flops:
        g = w.flops / med / 1e9
        row += [f"{g:.1f}", f"{100 * g / peak_gflops:.0f}%"]
    if w.job:
        row += [f"{statistics.median(res[c.name]['acc']):.3f}"]
    if firsts:
        row += ["" if c.first is None else f"{c.first:.3g}"]
    return row


# ----- targets ------------------------------------------------------------------------------------
def targets(summary: dict, mem: dict | None) -> str:
    """One row per target of issues #8 and #18 that this run measured: met / NOT met / pending."""
    rows = []

    def ratio(key, ref, peer):
        return summary.get(key, {}).get("ratios", {}).get((ref, peer))

    def row(what, r, ok, shown=None):
        rows.append((what, "—" if r is None else (shown or f"{r:.3f}"),
                     "pending" if r is None else ("met" if ok(r) else "NOT met")))

    for b in W.MLP_BATCHES:
        k = f"mlp{b}"
        if k not in summary:
            continue
        row(f"MLP step b={b}: chainrule / torch Adam <= 1.0", ratio(k, "chainrule", "torch"), lambda r: r <= 1.0)
        if b >= 128:
            row(f"MLP step b={b}: chainrule / torch Adam(fused) <= 1.0", ratio(k, "chainrule", "torch fused"),
                lambda r: r <= 1.0)
        if b == 1024:
            s = summary[k]
            frac = s["flops"] / s["med"]["chainrule"] / 1e9 / s["peak"] if "chainrule" in s["med"] else None
            row("MLP step b=1024: >= 85% of sgemm peak", frac, lambda f: f >= 0.85,
                None if frac is None else f"{100 * frac:.1f}%")
    for k, label in (("logreg", "Logistic regression step"), ("add", "(8,8) add fwd+bwd")):
        if k in summary:
            row(f"{label}: <= 0.5x torch", ratio(k, "chainrule", "torch"), lambda r: r <= 0.5)
    for k in ("digits", "mnist1d"):
        if k not in summary:
            continue
        s = summary[k]
        acc = {n: statistics.median(v["acc"]) for n, v in s["res"].items()}
        for peer in ("torch", "sklearn", "mygrad"):
            ref = _ref_for(W.Workload(k, "", "s", 1, job=True), peer, s["med"])
            r = ratio(k, ref, peer)
            shown = None if r is None else f"{r:.3f} ({ref}; acc {acc[ref]:.3f} vs {acc[peer]:.3f})"
            row(f"{k} job: faster than {peer} at the same accuracy (within 1 pt)", r,
                lambda r: r < 1.0 and acc[ref] >= acc[peer] - 0.01, shown)
    for b, m in sorted((mem or {}).items()):
        for peer, label in (("torch", "Adam"), ("torch-fused", "Adam(fused)")):
            cr, tc = m.get("chainrule", {}), m.get(peer, {})
            r = cr["peak"] / max(tc["peak"], 1) if "peak" in cr and "peak" in tc else None
            row(f"Peak memory of a step b={b}: <= torch {label}", r, lambda r: r <= 1.0)
    _issue18_rows(summary, row)
    out = ["| target | measured (chainrule / peer) | status |", "|---|---:|---|"]
    out += [f"| {a} | {b} | {c} |" for a, b, c in rows]
    return "\n".join(out) + "\n"


def _issue18_rows(summary: dict, row) -> None:
    """Issue #18's step targets: within 1.2x of hand NumPy (1.5x for micrograd's moons demo) and faster than
    jax.jit, for chainrule eager and, once it has landed, chainrule compiled (its own median over the peer's,
    from the same round-robin)."""
    keys = [(f"mlp{b}", "step", 1.2) for b in W.MLP_BATCHES] + [("logreg", "step", 1.2), ("moons", "step", 1.5)]
    keys += [("digits", "job", 1.5), ("mnist1d", "job", 1.2)]  # whole jobs: recording/compiling included
    for k, what, hand in keys:
        med = summary.get(k, {}).get("med", {})
        whos = ("chainrule", "chainrule compiled") if what == "step" else ("chainrule fit", "chainrule fit compiled")
        for who in whos:
            if who not in med:
                continue
            for peer, limit, op in (("hand NumPy", hand, "<="), ("jax.jit", 1.0, "<")):
                r = med[who] / med[peer] if peer in med else None
                row(f"{k} {what}: {who} / {peer} {op} {limit:g} (issue #18)", r,
                    (lambda r, lim=limit: r <= lim) if op == "<=" else (lambda r, lim=limit: r < lim))


def summary_table(summary: dict, mem: dict | None) -> str:
    """One line per workload: chainrule / peer for each peer (time, or memory for the memory rows); the
    compiled replay's column is chainrule compiled / torch."""
    def r(key, ref, peer):
        v = summary.get(key, {}).get("ratios", {}).get((ref, peer))
        med = summary.get(key, {}).get("med", {})
        if v is None and ref in med and peer in med:  # any two rows of one workload, timed in one round-robin
            v = med[ref] / med[peer]
        return "" if v is None else f"{v:.2f}"

    def step_row(label, k, fused):
        return (f"| {label} | {r(k, 'chainrule', 'torch')} | {r(k, 'chainrule', 'torch fused') if fused else ''} | "
                f"{r(k, 'chainrule', 'hand NumPy')} | {r(k, 'chainrule', 'jax.jit')} | "
                f"{r(k, 'chainrule', 'torch.compile step')} | {r(k, 'chainrule compiled', 'torch')} | | "
                f"{r(k, 'chainrule', 'mygrad')} |")
    out = ["| workload | / torch | / torch fused Adam | / hand NumPy | / jax.jit | / torch.compile step "
           "| compiled / torch | / scikit-learn | / mygrad |", "|---|" + "---:|" * 8]
    for b in W.MLP_BATCHES:
        k = f"mlp{b}"
        if k in summary:
            out.append(step_row(f"MLP step, Adam, batch {b}", k, True))
            out.append(f"| MLP forward+backward only, batch {b} | {r(k, 'chainrule fwd+bwd', 'torch fwd+bwd')} |"
                       + " |" * 7)
    if "logreg" in summary:
        out.append(step_row("logistic regression step, SGD", "logreg", False))
    if "moons" in summary:
        out.append(step_row("micrograd's moons demo step, SGD, batch 100", "moons", False))
    if "add" in summary:
        out.append(f"| (8, 8) add, forward+backward | {r('add', 'chainrule', 'torch')} |" + " |" * 6
                   + f" {r('add', 'chainrule', 'mygrad')} |")
    for k in ("digits", "mnist1d"):
        if k in summary:
            out.append(f"| {k} job, 30 epochs | {r(k, 'chainrule', 'torch')} | | "
                       f"{r(k, 'chainrule fit compiled', 'hand NumPy')} | {r(k, 'chainrule fit compiled', 'jax.jit')} | | "
                       f"{r(k, 'chainrule fit compiled', 'torch')} | {r(k, 'chainrule MLPClassifier', 'sklearn')} | "
                       f"{r(k, 'chainrule', 'mygrad')} |")
    for b, m in sorted((mem or {}).items()):
        c = m.get("chainrule", {}).get("peak")
        t, f = m.get("torch", {}).get("peak"), m.get("torch-fused", {}).get("peak")
        out.append(f"| peak memory of a step, batch {b} | {'' if not (c and t) else f'{c / t:.2f}'} | "
                   f"{'' if not (c and f) else f'{c / f:.2f}'} |" + " |" * 6)
    return "\n".join(out) + "\n"


def memory_section(threads: int, batches=(128, 1024), quick=False) -> tuple[str, dict]:
    import bench_memory
    libs = ["chainrule", "torch", "torch-fused"]
    mem: dict = {}
    lines = ["### Peak memory of one MLP 784-512-512-10 training step (Adam)", "",
             "Fresh subprocess per measurement; peak bytes of array data live during one steady-state step above "
             "the level at its start: tracemalloc for NumPy, torch.profiler's allocator events for torch (method in "
             f"`bench/bench_memory.py`). Median of {1 if quick else 3} processes. The RSS column is the resident-set "
             "high-water mark over the step, for reference only (it misses reused pages).", "",
             "| batch | contender | peak (MB) | chainrule / this | RSS high-water delta (MB) |",
             "|---:|---|---:|---:|---:|"]
    for b in batches:
        mem[b] = {lib: bench_memory.measure(lib, b, threads, repeats=1 if quick else 3) for lib in libs}
        for lib in libs:
            m = mem[b][lib]
            if "error" in m:
                lines.append(f"| {b} | {lib} | error: {m['error']} | | |")
                continue
            ref = mem[b].get("chainrule", {})
            r = "" if lib.startswith("chainrule") or "peak" not in ref else f"**{ref['peak'] / m['peak']:.2f}**"
            rss = "" if m.get("rss_peak") is None else f"{m['rss_peak'] / 2**20:.1f}"
            lines.append(f"| {b} | {lib} | {m['peak'] / 2**20:.1f} | {r} | {rss} |")
    return "\n".join(lines) + "\n", mem


def peer_skips() -> dict:
    """Peers that cannot run here, name -> reason (pending rows), each said once on stdout as well."""
    skip = {}
    if not any(shutil.which(cc) for cc in ("g++", "c++", "clang++")):  # inductor's CPU code needs one
        why = "torch.compile needs a C++ compiler for its CPU kernels and none is on PATH (apt-get install g++)"
        skip = {"torch.compile model": why, "torch.compile step": why}
        print(f"skipping torch.compile: {why}", flush=True)
    import chainrule  # loads MKL (chainrule[mkl]) before main's threadpool_limits, which then pins it too
    if not hasattr(chainrule, "compile"):  # the compiled replay's column fills in once cr.compile lands
        skip["chainrule compiled"] = "chainrule.compile has not landed yet: this column fills in when it does"
        print("skipping chainrule compiled: chainrule has no compile() yet", flush=True)
    return skip


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="few rounds, 3-epoch jobs: a smoke run, not results")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--clock", choices=["cpu", "wall"], default=None,
                    help="cpu: process CPU time (default with 1 thread: robust to being descheduled on a shared "
                         "machine); wall: perf_counter (default with more threads, where CPU time adds threads up)")
    ap.add_argument("--only", nargs="+",
                    help="workload keys: mlp16 mlp128 mlp1024 logreg moons add digits mnist1d mem profile gemm findings")
    ap.add_argument("--md", help="also write the markdown here")
    ap.add_argument("--update-doc", metavar="PATH",
                    help="replace the part of PATH between '<!-- results:start -->' and '<!-- results:end -->'")
    a = ap.parse_args(argv)
    global CLOCK
    CLOCK = a.clock or ("cpu" if a.threads == 1 else "wall")

    if a.threads == 1:  # XLA's CPU client: one thread like the others (read when jax is first imported)
        os.environ.setdefault("XLA_FLAGS", "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1")
    import torch
    from threadpoolctl import threadpool_limits

    compile_skip = peer_skips()
    torch.set_num_threads(a.threads)
    out = []
    with threadpool_limits(a.threads):
        peak = sgemm_peak(reps=3 if a.quick else 7)
        peak_best = max(peak.values())
        out += ["## Results", "", f"Machine: {machine_line(a.threads, peak)}. {code_line()}.", "",
                f"Peak used for '% of sgemm peak': {peak_best:.0f} GFLOP/s (the fastest probe).", ""]
        print("\n".join(out), flush=True)
        summary = {}
        wanted = set(a.only or ["mlp16", "mlp128", "mlp1024", "logreg", "moons", "add", "digits", "mnist1d", "mem",
                                "profile", "gemm", "findings"])
        builders = [(f"mlp{b}", lambda b=b: W.mlp_step(b)) for b in W.MLP_BATCHES] + [
            ("logreg", W.logreg_step), ("moons", W.moons_step), ("add", W.add_op),
            ("digits", lambda: W.full_job("digits", a.quick)), ("mnist1d", lambda: W.full_job("mnist1d", a.quick))]
        for key, build in builders:
            if key not in wanted:
                continue
            w = build()
            if w.spec is not None:
                import peers
                peers.add_peers(w, skip=compile_skip)
            if w.job:
                # no warm-up run in a full run: torch is warm from the step workloads, and a median of 5
                # alternating runs (seeds 0-4) drops a one-off slow first run. Five, not three: over 20 seeds
                # the MNIST-1D test accuracy has a spread of ~1 point per run, so two medians of 3 of the same
                # distribution differ by more than the 1-point target about a third of the time (5: a quarter).
                rounds, blocks, warmup = (1, 1, 1) if a.quick else (5, 1, 0)
            elif key.startswith("mlp"):
                b = int(key[3:])
                rounds, blocks = (3, 3) if a.quick else ({16: 30, 128: 30, 1024: 20}[b], {16: 15, 128: 5, 1024: 3}[b])
                warmup = 3
            else:
                rounds, blocks = (3, 5) if a.quick else (30, 20)
                warmup = 20
            res = time_workload(w, rounds, blocks, warmup)
            md, s = render(w, res, peak_best)
            s["flops"] = w.flops
            summary[key] = s
            print(md, flush=True)
            out.append(md)
        mem = None
        if "mem" in wanted:
            md, mem = memory_section(a.threads, quick=a.quick)
            print(md, flush=True)
            out.append(md)
        tmd = ("### Summary: chainrule / peer (below 1 = chainrule faster or smaller)\n\n"
               "Jobs: the hand loop against torch and mygrad, chainrule.sklearn.MLPClassifier against scikit-learn's.\n\n"
               + summary_table(summary, mem) + "\n### Targets (issues #8 and #18)\n\n" + targets(summary, mem))
        print(tmd, flush=True)
        out.append(tmd)
        if "profile" in wanted:
            import bench_profile
            p = "### Profile of the chainrule steps (cProfile)\n\n" + "\n".join(
                [bench_profile.profile_step(b, 100 if a.quick else 400 if b <= 128 else 40, 15) for b in (16, 1024)]
                + [bench_profile.profile_step(32, 200 if a.quick else 2000, 15, sizes=(64, 10), optimizer="SGD")])
            print(p, flush=True)
            out.append(p)
        if "gemm" in wanted:
            import contextlib
            import io

            import bench_gemm
            buf = io.StringIO()
            with contextlib.redirect_stdout(buf):
                bench_gemm.main(["--threads", str(a.threads), "--reps", "5" if a.quick else "11"])
            p = ("### The step's GEMMs alone: NumPy (OpenBLAS), torch (MKL) and chainrule[mkl]'s products\n"
                 + buf.getvalue())
            print(p, flush=True)
            out.append(p)
        if "findings" in wanted:
            import bench_findings
            p = "### Experiments behind the findings (`bench/bench_findings.py`)\n\n" + bench_findings.adam(
                10 if a.quick else 40) + "\n" + bench_findings.memory()
            print(p, flush=True)
            out.append(p)
        out.append(f"Load average at the end: {os.getloadavg()[0]:.1f}.\n")
    text = "\n".join(out) + "\n"
    if a.md:
        Path(a.md).write_text(text)
    if a.update_doc:
        doc = Path(a.update_doc).read_text()
        start, end = "<!-- results:start -->", "<!-- results:end -->"
        if start not in doc or end not in doc:
            raise SystemExit(f"{a.update_doc}: no '{start}' ... '{end}' markers to replace between")
        head, rest = doc.split(start, 1)
        Path(a.update_doc).write_text(head + start + "\n" + text + end + rest.split(end, 1)[1])
    return 0


if __name__ == "__main__":
    sys.exit(main())
