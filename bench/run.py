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
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

import workloads as W  # noqa: E402

TARGETS_NOTE = "Targets from issue #8."


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
    for info in threadpool_info():
        if info.get("user_api") == "blas":
            return (f"{info.get('internal_api')} {info.get('version')} ({info.get('architecture')}, "
                    f"{info.get('threading_layer')})")
    return "unknown (threadpoolctl found no BLAS)"


def sgemm_peak(n: int = 2048, reps: int = 7) -> dict:
    """Median GFLOP/s of an n^3 float32 matmul through NumPy's BLAS and through PyTorch."""
    rng = np.random.default_rng(0)
    a, b = rng.standard_normal((n, n), dtype=np.float32), rng.standard_normal((n, n), dtype=np.float32)
    out = np.empty((n, n), np.float32)
    flops = 2 * n ** 3
    res = {}
    import torch
    ta, tb, tout = torch.from_numpy(a), torch.from_numpy(b), torch.empty(n, n)
    runs = {"numpy": lambda: np.matmul(a, b, out=out), "torch": lambda: torch.mm(ta, tb, out=tout)}
    times = {k: [] for k in runs}
    for f in runs.values():
        f()
    for _ in range(reps):  # alternate here too
        for k, f in runs.items():
            t0 = time.perf_counter()
            f()
            times[k].append(time.perf_counter() - t0)
    for k, ts in times.items():
        res[k] = flops / statistics.median(ts) / 1e9
    return res


def machine_line(threads: int, peak: dict) -> str:
    import torch
    return (f"{dt.datetime.now(dt.timezone.utc):%Y-%m-%d %H:%M} UTC; {cpu_model()}, {os.cpu_count()} cores "
            f"(shared, noisy); Python {platform.python_version()}, NumPy {np.__version__} on {blas_line()}, "
            f"torch {torch.__version__} (MKL); threads: {threads} for NumPy BLAS (threadpoolctl) and torch "
            f"(set_num_threads); sgemm 2048^3 float32: NumPy {peak['numpy']:.0f} GFLOP/s, torch "
            f"{peak['torch']:.0f} GFLOP/s")


# ----- timing -------------------------------------------------------------------------------------
def time_workload(w: W.Workload, rounds: int, blocks: int, warmup: int) -> dict:
    """Round-robin timing. Returns name -> list of per-step seconds (or per-job seconds and accuracies)."""
    live = [c for c in w.contenders if c.step is not None]
    res = {c.name: {"t": [], "acc": []} for c in live}
    for c in live:
        for _ in range(0 if w.job else warmup):
            c.step()
    n = len(live)
    for r in range(rounds):
        order = live[r % n:] + live[:r % n] if n else []
        for c in order:
            for _ in range(blocks):
                t0 = time.perf_counter()
                for _ in range(w.block):
                    v = c.step()
                dt_ = (time.perf_counter() - t0) / w.block
                res[c.name]["t"].append(dt_)
                if w.job:
                    res[c.name]["acc"].append(v)
    return res


def _q(xs, q):
    return float(np.quantile(xs, q))


def fmt_time(sec: float, unit: str) -> str:
    scale = {"s": 1, "ms": 1e3, "us": 1e6}[unit]
    v = sec * scale
    return f"{v:.3g}" if v < 100 else f"{v:.0f}"


def render(w: W.Workload, res: dict, peak_gflops: float) -> tuple[str, dict]:
    """A markdown table for one workload, and the chainrule/peer ratios for the summary."""
    lines = [f"### {w.title}", ""]
    if w.data_source:
        lines += [f"Data: {w.data_source}.", ""]
    cols = ["contender", "how", f"median {w.unit}", "IQR", "chainrule / this"]
    if w.flops:
        cols += ["GFLOP/s", "% of sgemm peak"]
    if w.job:
        cols += ["test acc (median)"]
    lines += ["| " + " | ".join(cols) + " |", "|" + "---|" * 2 + "---:|" * (len(cols) - 2)]
    med = {k: statistics.median(v["t"]) for k, v in res.items()}
    # chainrule reference for each row: engine-only rows compare with engine-only rows
    ratios = {}
    for c in w.contenders:
        if c.step is None:
            lines.append(f"| {c.name} | {c.note} | pending | | | " + "| " * (len(cols) - 5) + "")
            lines[-1] = f"| {c.name} | pending: {c.pending} |" + " |" * (len(cols) - 2)
            continue
        ref = "chainrule fwd+bwd" if c.name.endswith("fwd+bwd") else (
            "chainrule" if "chainrule" in med else None)
        if w.job and c.name == "sklearn" and "chainrule MLPClassifier" in med:
            ref = "chainrule MLPClassifier"
        r = med[ref] / med[c.name] if ref in med and ref != c.name and not c.name.startswith("chainrule") else None
        if r is not None:
            ratios[(ref, c.name)] = r
        ts = res[c.name]["t"]
        row = [c.name, c.note, fmt_time(med[c.name], w.unit),
               f"{fmt_time(_q(ts, .25), w.unit)}-{fmt_time(_q(ts, .75), w.unit)}",
               f"**{r:.2f}**" if r is not None else ("(reference)" if c.lib == "chainrule" else "")]
        if w.flops:
            g = w.flops / med[c.name] / 1e9
            row += [f"{g:.1f}", f"{100 * g / peak_gflops:.0f}%"]
        if w.job:
            row += [f"{statistics.median(res[c.name]['acc']):.3f}"]
        lines.append("| " + " | ".join(row) + " |")
    return "\n".join(lines) + "\n", {"med": med, "ratios": ratios, "res": res}


# ----- targets ------------------------------------------------------------------------------------
def targets(summary: dict, peak: float, mem: dict | None) -> str:
    rows = []

    def ratio(key, ref, peer):
        return summary.get(key, {}).get("ratios", {}).get((ref, peer))

    def verdict(v, ok):
        return "pending" if v is None else ("met" if ok else "NOT met")

    for b in W.MLP_BATCHES:
        k = f"mlp{b}"
        r = ratio(k, "chainrule", "torch")
        rows.append((f"MLP step b={b}: chainrule / torch Adam <= 1.0", "—" if r is None else f"{r:.2f}",
                     verdict(r, r is not None and r <= 1.0)))
        if b >= 128:
            r = ratio(k, "chainrule", "torch fused")
            rows.append((f"MLP step b={b}: chainrule / torch Adam(fused) <= 1.0", "—" if r is None else f"{r:.2f}",
                         verdict(r, r is not None and r <= 1.0)))
    s = summary.get("mlp1024")
    if s and "chainrule" in s["med"]:
        frac = s["flops"] / s["med"]["chainrule"] / 1e9 / peak
        rows.append(("MLP step b=1024: >= 85% of sgemm peak", f"{100 * frac:.0f}%", verdict(frac, frac >= 0.85)))
    else:
        rows.append(("MLP step b=1024: >= 85% of sgemm peak", "—", "pending"))
    for k, label in (("logreg", "Logistic regression step"), ("add", "(8,8) add fwd+bwd")):
        r = ratio(k, "chainrule", "torch")
        rows.append((f"{label}: <= 0.5x torch", "—" if r is None else f"{r:.2f}", verdict(r, r is not None and r <= 0.5)))
    for k in ("digits", "mnist1d"):
        s = summary.get(k)
        for peer in ("torch", "sklearn", "mygrad"):
            ref = "chainrule MLPClassifier" if peer == "sklearn" and s and "chainrule MLPClassifier" in s["med"] \
                else "chainrule"
            r = ratio(k, ref, peer)
            acc_ok = None
            if r is not None:
                acc = {n: statistics.median(v["acc"]) for n, v in s["res"].items()}
                acc_ok = acc[ref] >= acc[peer] - 0.01
            rows.append((f"{k} job: faster than {peer} at the same accuracy (±1 pt)",
                         "—" if r is None else f"{r:.2f} (acc {acc[ref]:.3f} vs {acc[peer]:.3f})",
                         verdict(r, r is not None and r < 1.0 and acc_ok)))
    if mem:
        for b, m in sorted(mem.items()):
            cr, tc = m.get("chainrule"), m.get("torch")
            if not cr or not tc or "error" in cr or "error" in tc:
                rows.append((f"Peak step memory b={b} <= torch", "—", "pending"))
                continue
            r = cr["rss_peak"] / max(tc["rss_peak"], 1)
            rows.append((f"Peak step memory b={b} <= torch", f"{r:.2f}", verdict(r, r <= 1.0)))
    out = ["| target | measured (chainrule / peer) | status |", "|---|---:|---|"]
    out += [f"| {a} | {b} | {c} |" for a, b, c in rows]
    return "\n".join(out) + "\n"


def memory_section(threads: int, batches=(128, 1024), quick=False) -> tuple[str, dict]:
    import bench_memory
    libs = ["chainrule", "torch", "torch-fused", "chainrule-fwdbwd", "torch-fwdbwd"]
    mem: dict = {}
    lines = ["### Peak memory of one MLP 784-512-512-10 training step (Adam)", "",
             "Fresh subprocess per measurement, glibc told to unmap freed buffers at once; peak = VmHWM - VmRSS "
             "around one steady-state step (see `bench/bench_memory.py`). Median of "
             f"{1 if quick else 3} processes. tracemalloc = NumPy's own traced peak in the same step.", "",
             "| batch | contender | peak RSS over baseline (MB) | tracemalloc peak (MB) | chainrule / this |",
             "|---:|---|---:|---:|---:|"]
    for b in batches:
        mem[b] = {}
        for lib in libs:
            try:
                mem[b][lib] = bench_memory.measure(lib, b, threads, repeats=1 if quick else 3)
            except W._Pending as e:
                mem[b][lib] = {"error": str(e)}
        for lib in libs:
            m = mem[b][lib]
            if "error" in m:
                lines.append(f"| {b} | {lib} | pending/error: {m['error']} | | |")
                continue
            ref = mem[b].get("chainrule-fwdbwd" if lib.endswith("fwdbwd") else "chainrule", {})
            r = "" if lib.startswith("chainrule") or "rss_peak" not in ref else f"{ref['rss_peak'] / m['rss_peak']:.2f}"
            tm = "" if m.get("traced_peak") is None else f"{m['traced_peak'] / 2**20:.1f}"
            lines.append(f"| {b} | {lib} | {m['rss_peak'] / 2**20:.1f} | {tm} | {r} |")
    return "\n".join(lines) + "\n", mem


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="few rounds, 3-epoch jobs: a smoke run, not results")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--only", nargs="+", help="workload keys: mlp16 mlp128 mlp1024 logreg add digits mnist1d mem profile")
    ap.add_argument("--md", help="also write the markdown here")
    a = ap.parse_args(argv)

    import torch
    from threadpoolctl import threadpool_limits
    torch.set_num_threads(a.threads)
    out = []
    with threadpool_limits(a.threads):
        peak = sgemm_peak(reps=3 if a.quick else 7)
        peak_best = max(peak.values())
        out += ["## Results", "", f"Machine: {machine_line(a.threads, peak)}.", "",
                f"Peak used for '% of sgemm peak': {peak_best:.0f} GFLOP/s (the faster of the two).", ""]
        print("\n".join(out), flush=True)
        summary = {}
        wanted = set(a.only or ["mlp16", "mlp128", "mlp1024", "logreg", "add", "digits", "mnist1d", "mem"])
        builders = [(f"mlp{b}", lambda b=b: W.mlp_step(b)) for b in W.MLP_BATCHES] + [
            ("logreg", W.logreg_step), ("add", W.add_op),
            ("digits", lambda: W.full_job("digits", a.quick)), ("mnist1d", lambda: W.full_job("mnist1d", a.quick))]
        for key, build in builders:
            if key not in wanted:
                continue
            w = build()
            if w.job:
                rounds, blocks, warmup = (1, 1, 0) if a.quick else (5, 1, 0)
            elif key.startswith("mlp"):
                b = int(key[3:])
                rounds, blocks = (3, 3) if a.quick else (15, {16: 40, 128: 10, 1024: 3}[b])
                warmup = 3
            else:
                rounds, blocks = (3, 5) if a.quick else (15, 40)
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
        tmd = "### Targets (issue #8)\n\n" + targets(summary, peak_best, mem)
        print(tmd, flush=True)
        out.append(tmd)
        if a.only and "profile" in a.only:
            import bench_profile
            for b in (16, 1024):
                p = bench_profile.profile_step(b, 400 if b <= 128 else 40, 15)
                print(p, flush=True)
                out.append(p)
    if a.md:
        Path(a.md).write_text("\n".join(out) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
