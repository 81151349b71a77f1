"""Peak memory of one MLP training step (workload 5), measured in a fresh subprocess per library.

Primary method, allocator accounting, the same definition for both libraries: the peak number of bytes
of array data live at any moment during one steady-state training step, above the level at the step's
start (so it counts activations, gradients, optimizer temporaries; not the weights, the optimizer state
or the data, which exist before the step):

* NumPy-based libraries: ``tracemalloc`` (NumPy reports every array-data allocation to it).
* PyTorch: ``torch.profiler.profile(profile_memory=True)``, whose CPU allocator reports each allocation
  and free with its size; the running sum of those sizes gives the peak.

Both see only blocks allocated while they watch: a free of an older block (last step's gradients, freed
by ``zero_grad``) is not subtracted, on either side.

Secondary, for reference: the resident-set high-water mark. After two warm-up steps, ``gc.collect()``,
reset the kernel's high-water mark (``echo 5 > /proc/self/clear_refs``), run one step, and take VmHWM
minus the VmRSS before the step; glibc is told to unmap freed buffers at once
(``MALLOC_MMAP_THRESHOLD_=65536``, ``MALLOC_TRIM_THRESHOLD_=0``). It counts only pages that were not
already resident, so a library whose step reuses last step's pages shows almost nothing (PyTorch here:
its gradient buffers come back at the same addresses step after step).

Run as ``python bench/bench_memory.py LIB BATCH [THREADS]``; prints one JSON line.
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
    rss_peak = None
    if _reset_hwm():
        base = _status("VmRSS")
        step()
        rss_peak = _status("VmHWM") - base
    gc.collect()
    if lib.startswith("torch"):
        peak = _torch_peak(step)
    else:
        tracemalloc.start()
        step()
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    return {"lib": lib, "batch": batch_size, "how": how, "peak": peak, "rss_peak": rss_peak}


def _torch_peak(step) -> int:
    """Peak of the running sum of allocation sizes reported by torch's CPU allocator during one step."""
    import tempfile

    from torch.profiler import ProfilerActivity, profile
    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        step()
    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, "trace.json")
        prof.export_chrome_trace(path)
        with open(path) as f:
            events = [e for e in json.load(f)["traceEvents"] if e.get("name") == "[memory]"]
    live = peak = 0
    for e in sorted(events, key=lambda e: e["ts"]):
        live += e["args"]["Bytes"]
        peak = max(peak, live)
    return peak


def measure(lib: str, batch_size: int, threads: int, repeats: int = 3) -> dict:
    """Run the child ``repeats`` times (fresh processes) and keep the median peak."""
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
    runs.sort(key=lambda r: r["peak"])
    res = dict(runs[len(runs) // 2])
    res["runs"] = [r["peak"] for r in runs]
    return res


if __name__ == "__main__":
    from threadpoolctl import threadpool_limits
    _threads = int(sys.argv[3]) if len(sys.argv) > 3 else 1
    threadpool_limits(_threads)
    if sys.argv[1].startswith("torch"):
        import torch
        torch.set_num_threads(_threads)
    print(json.dumps(child(sys.argv[1], int(sys.argv[2]), int(sys.argv[3]) if len(sys.argv) > 3 else 1)))
