"""Regenerate everything the guide shows: run each lecture example in full mode, save its figures
under docs/figures/ and paste its printed output into docs/guide.md between the markers
``<!-- output:NN -->`` and ``<!-- /output:NN -->``; then regenerate docs/api.md.

    python docs/make_figures.py            # all examples (a few minutes on 2 cores)
    python docs/make_figures.py 04 06      # only these
"""

from __future__ import annotations

import contextlib
import importlib.util
import io
import re
import sys
import time
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

DOCS = Path(__file__).resolve().parent
ROOT = DOCS.parent
FIG = DOCS / "figures"
GUIDE = DOCS / "guide.md"
FIGURES = ("02", "05", "06", "08")   # the examples that write figures (their --out)


def load(stem):
    path = next((ROOT / "examples").glob(f"{stem}_*.py"))
    spec = importlib.util.spec_from_file_location(path.stem, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def run(stem):
    """Run example ``stem`` in full mode; returns its printed output."""
    module = load(stem)
    kwargs = {"out": str(FIG)} if stem in FIGURES else {}   # each writes docs/figures/<stem>_*.png
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        result = module.main(quick=False, **kwargs)
    if stem == "04":  # the computation graph of the lecture's network, drawn by Graphviz when present
        import chainrule as cr

        if cr.viz.dot_available():
            (FIG / "04_graph.dot").write_text(result["dot"])
            import subprocess

            subprocess.run(["dot", "-Tpng", "-Gdpi=80", str(FIG / "04_graph.dot"), "-o", str(FIG / "04_graph.png")],
                           check=True)
            (FIG / "04_graph.dot").unlink()
    return buf.getvalue().replace(str(ROOT) + "/", "")   # paths relative to the repository


def paste(stem, text):
    guide = GUIDE.read_text()
    pattern = re.compile(rf"(<!-- output:{stem} -->\n).*?(<!-- /output:{stem} -->)", re.S)
    if not pattern.search(guide):
        print(f"  (no output:{stem} marker in the guide)")
        return
    block = "```text\n" + text.rstrip() + "\n```\n"
    GUIDE.write_text(pattern.sub(lambda m: m.group(1) + block + m.group(2), guide))


def main(stems):
    from threadpoolctl import threadpool_limits

    FIG.mkdir(exist_ok=True)
    for stem in stems:
        t = time.time()
        with threadpool_limits(1):  # small problems: BLAS threads only contend on a shared box
            text = run(stem)
        paste(stem, text)
        print(f"example {stem}: {time.time() - t:.1f} s")
    for png in sorted(FIG.glob("*.png")):
        kb = png.stat().st_size / 1024
        print(f"  {png.relative_to(ROOT)}  {kb:.0f} KB" + ("  (> 100 KB!)" if kb > 100 else ""))
    sys.path.insert(0, str(DOCS))
    import make_api

    (DOCS / "api.md").write_text(make_api.render())


if __name__ == "__main__":
    main(sys.argv[1:] or [f"{k:02d}" for k in range(1, 9)])
