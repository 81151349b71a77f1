"""Peak memory of one MLP training step (workload 5), measured in a fresh subprocess per library.

Method (the same for every library, so the numbers compare):

1. A fresh interpreter, started with ``MALLOC_MMAP_THRESHOLD_=65536`` and ``MALLOC_TRIM_THRESHOLD_=0`` so
   glibc returns freed buffers to the OS at once: otherwise freed arrays stay resident and the resident
   set stops tracking live memory (glibc's dynamic mmap threshold grows to 32 MB after the first frees).
2. Build the model, data and optimizer; run two warm-up steps (optimizer state exists, caches are warm).
3. ``gc.collect()``, reset the kernel's resident-set high-water mark (``echo 5 > /proc/self/clear_refs``),
   read VmRSS as the baseline, run one step, read VmHWM. Peak = VmHWM - baseline: the transient memory of
   a step (activations, gradients, optimizer temporaries), the persistent state being in the baseline.
4. For NumPy-based libraries also ``tracemalloc`` (NumPy reports its data allocations to it): the traced
   peak during the same step, as a cross-check that does not depend on page granularity.

Run as ``python bench/bench_memory.py LIB BATCH``; prints one JSON line.
"""

from __future__ import annotations

import gc
import json
import os
import subprocess
import sys
import tracemalloc
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

MALLOC_ENV = {"MALLOC_MMAP_THRESHOLD_": "65536", "MALLOC_TRIM_THRESHOLD_": "0"}


def _status(key: str) -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1]) * 1024
    raise KeyError(key)


def _reset_hwm() -> bool:
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def child(lib: str, batch_size: int, threads: int) -> dict:
    import workloads as W
    sizes, arrays = W.MLP_SIZES, W.init_mlp(W.MLP_SIZES)
    x, y = W.batch(batch_size, sizes[0])
    if lib == "chainrule":
        step, how = W.cr_train_step(sizes, arrays, x, y, "Adam", W.ADAM_LR)
    elif lib == "chainrule-fwdbwd":
        step, how = W.cr_train_step(sizes, arrays, x, y, None, W.ADAM_LR)
    elif lib == "torch":
        step, how = W.torch_train_step(sizes, arrays, x, y, "Adam", W.ADAM_LR), "torch Adam"
    elif lib == "torch-fused":
        step, how = W.torch_train_step(sizes, arrays, x, y, "Adam", W.ADAM_LR, fused=True), "torch Adam(fused)"
    elif lib == "torch-fwdbwd":
        step, how = W.torch_train_step(sizes, arrays, x, y, None, W.ADAM_LR), "torch"
    else:
        raise SystemExit(f"unknown lib {lib!r}")
    step(); step()
    del arrays
    gc.collect()
    if not _reset_hwm():
        return {"error": "cannot reset VmHWM (/proc/self/clear_refs not writable)"}
    base = _status("VmRSS")
    step()
    peak_rss = _status("VmHWM") - base
    traced = None
    if not lib.startswith("torch"):
        gc.collect()
        tracemalloc.start()
        step()
        traced = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    return {"lib": lib, "batch": batch_size, "how": how, "rss_peak": peak_rss, "traced_peak": traced,
            "baseline_rss": base}


def measure(lib: str, batch_size: int, threads: int, repeats: int = 3) -> dict:
    """Run the child ``repeats`` times (fresh processes) and keep the median RSS peak."""
    env = {**os.environ, **MALLOC_ENV}
    runs = []
    for _ in range(repeats):
        out = subprocess.run([sys.executable, __file__, lib, str(batch_size), str(threads)], env=env,
                             capture_output=True, text=True, timeout=300)
        if out.returncode != 0:
            return {"lib": lib, "batch": batch_size, "error": out.stderr.strip().splitlines()[-1:]}
        runs.append(json.loads(out.stdout.strip().splitlines()[-1]))
    if any("error" in r for r in runs):
        return runs[0]
    runs.sort(key=lambda r: r["rss_peak"])
    res = dict(runs[len(runs) // 2])
    res["rss_runs"] = [r["rss_peak"] for r in runs]
    return res


if __name__ == "__main__":
    from threadpoolctl import threadpool_limits
    _threads = int(sys.argv[3]) if len(sys.argv) > 3 else 1
    threadpool_limits(_threads)
    if sys.argv[1].startswith("torch"):
        import torch
        torch.set_num_threads(_threads)
    print(json.dumps(child(sys.argv[1], int(sys.argv[2]), int(sys.argv[3]) if len(sys.argv) > 3 else 1)))
