"""Profile of workload 1's chainrule step (cProfile): where the time of one MLP training step goes.

``python bench/bench_profile.py [--batch 16 1024] [--steps N] [--top K]`` prints, per batch size, the
top functions by cumulative time and by own (self) time, as markdown tables. cProfile's per-call cost
inflates Python-heavy code a little, so read shares, not absolute times; the shares are what point at
the fix. The optimizer is profiled when ``chainrule.optim.Adam`` exists, otherwise forward+backward.
"""

from __future__ import annotations

import argparse
import cProfile
import os
import pstats
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import workloads as W  # noqa: E402


def _where(func) -> str:
    filename, line, name = func
    if filename == "~":
        return name  # a builtin, e.g. <method 'matmul' ...>
    parts = Path(filename).parts
    short = "/".join(parts[parts.index("chainrule"):]) if "chainrule" in parts else os.path.basename(filename)
    return f"{short}:{line} {name}"


def profile_step(batch_size: int, steps: int, top: int, sizes=W.MLP_SIZES, optimizer="Adam") -> str:
    """cProfile (on process CPU time, so time spent descheduled does not count) of ``steps`` steps."""
    arrays = W.init_mlp(sizes)
    x, y = W.batches(batch_size, sizes[0])
    lr = W.ADAM_LR if optimizer == "Adam" else W.SGD_LR
    try:
        step, how = W.cr_train_step(sizes, arrays, x, y, optimizer, lr)
    except W._Pending as e:
        step, how = W.cr_train_step(sizes, arrays, x, y, None, lr)
        how += f" (forward+backward only: {e})"
    for _ in range(3):
        step()
    prof = cProfile.Profile(time.process_time)
    prof.enable()
    for _ in range(steps):
        step()
    prof.disable()
    st = pstats.Stats(prof)
    total = st.total_tt
    rows = st.stats  # func -> (cc, nc, tt, ct, callers)
    arch = "-".join(map(str, sizes))
    out = [f"#### chainrule step, {arch}, batch {batch_size} ({how}; {steps} steps, cProfile on CPU time, "
           f"{1e3 * total / steps:.2f} ms/step under the profiler)", ""]
    for title, key in (("cumulative", 3), ("self", 2)):
        out += [f"Top {top} by {title} time:", "", "| function | calls/step | cum % | self % |",
                "|---|---:|---:|---:|"]
        ranked = sorted(rows.items(), key=lambda kv: kv[1][key], reverse=True)
        shown = 0
        for func, (_cc, nc, tt, ct, _) in ranked:
            if title == "cumulative" and func[2] in ("<module>", "step") and func[0] != "~":
                continue  # the harness itself
            if func[0] == "~" and func[2] == "<method 'disable' of '_lsprof.Profiler' objects>":
                continue
            out.append(f"| `{_where(func)}` | {nc / steps:.0f} | {100 * ct / total:.1f} | {100 * tt / total:.1f} |")
            shown += 1
            if shown == top:
                break
        out.append("")
    return "\n".join(out)


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--batch", type=int, nargs="+", default=[16, 1024])
    ap.add_argument("--steps", type=int, default=0, help="steps to profile (default: ~2 s of work)")
    ap.add_argument("--top", type=int, default=15)
    ap.add_argument("--threads", type=int, default=1)
    a = ap.parse_args(argv)
    from threadpoolctl import threadpool_limits
    with threadpool_limits(a.threads):
        for b in a.batch:
            print(profile_step(b, a.steps or (400 if b <= 128 else 40), a.top))


if __name__ == "__main__":
    main()
