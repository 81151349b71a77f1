"""The docs run: every fenced block of README.md and docs/*.md is executed and its shown output compared.

Conventions (also in docs/architecture.md, "A page of docs"):

* Every fence carries a language: ``python``, ``bash`` or ``text``. Formulas are math (``$...$``), not fences.
* ``python`` blocks of one file run in order, in one namespace, in a fresh temporary working directory.
* ``bash`` blocks run when every command in them is ``chainrule ...`` (through ``python -m chainrule.cli``,
  same temporary directory); anything else (pip, pytest, mpiexec, long jobs) must be marked no-run.
* A block preceded by ``<!-- no-run: why -->`` (on the line above it, other comments may sit between) is
  not run, or for a ``text`` block not compared; the reason is mandatory. A block whose reason says it is
  "an excerpt of examples/NN_*.py" must consist of that example's lines, in order (``...`` skips lines).
* Output: a ``text`` block right after a ``python`` or ``bash`` block (nothing but blank lines between)
  is that block's expected stdout. A ``text`` block after ``<!-- output:NN -->`` in the guide is what
  ``examples/NN_*.py`` prints in full mode (pasted by ``python docs/make_figures.py``): the test runs the
  example and compares. Other ``text`` blocks are displays (a file tree) and are not compared.
* Comparison: blank lines, all whitespace and the lengths of ``----`` rules are ignored; numbers (``1.``
  = ``1.0``, ``2,048`` = ``2048``) are compared to a relative precision of 1e-3 (absolute 1e-8); an
  expected line that is exactly ``...`` matches any number of lines; ``<!-- vary: REGEX -->`` above a
  block compares the numbers of the lines matching REGEX (both sides) by position only, for figures that
  change run to run (timings, float noise).
"""

from __future__ import annotations

import contextlib
import importlib.util
import io
import os
import re
import shlex
import subprocess
import sys
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
FILES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
LANGS = {"python", "bash", "text"}
RTOL, ATOL = 1e-3, 1e-8
FENCE = re.compile(r"^(\s*)```(.*)$")
NUMBER = re.compile(r"[-+]?(?:\d+\.\d*|\.\d+|\d+)(?:[eE][-+]?\d+)?")


@dataclass
class Block:
    lang: str
    code: str
    line: int                                     # 1-based line of the opening fence
    markers: list[str] = field(default_factory=list)
    after_code: bool = False                      # directly follows a python/bash block

    def marker(self, name: str) -> str | None:
        for m in self.markers:
            if m == name or m.startswith(name + ":"):
                return m[len(name) + 1:].strip() if ":" in m else ""
        return None


def parse(text: str) -> list[Block]:
    """The fenced blocks of a markdown text, each with the HTML comments just above it."""
    lines, blocks, i = text.splitlines(), [], 0
    last_code_end = None                          # line index of the closing fence of the last code block
    while i < len(lines):
        m = FENCE.match(lines[i])
        if not m:
            i += 1
            continue
        indent, info = len(m.group(1)), m.group(2).strip()
        j = i + 1
        while j < len(lines) and not re.match(r"^\s*```\s*$", lines[j]):
            j += 1
        code = "\n".join(line[indent:] for line in lines[i + 1:j])
        markers, k = [], i - 1
        while k >= 0 and (not lines[k].strip() or lines[k].strip().startswith("<!--")):
            if lines[k].strip():
                markers.insert(0, lines[k].strip()[4:].removesuffix("-->").strip())
            k -= 1
        after = last_code_end is not None and all(not s.strip() for s in lines[last_code_end + 1:i])
        block = Block(info.split()[0] if info else "", code, i + 1, markers, after)
        blocks.append(block)
        last_code_end = j if block.lang in ("python", "bash") else None
        i = j + 1
    return blocks


ANY = object()                                    # a number whose value is not compared (a `vary:` line)


def tokens(line: str, vary: re.Pattern | None = None) -> list:
    """A line as text pieces (whitespace removed) and floats (``ANY`` on a ``vary`` line)."""
    any_number = vary is not None and vary.search(line) is not None
    line = re.sub(r"(?<=\d),(?=\d{3}\b)", "", line)
    line = re.sub(r"-{2,}", "--", line)          # a table's rule follows its column widths
    out, pos = [], 0
    for m in NUMBER.finditer(line):
        out.append(re.sub(r"\s+", "", line[pos:m.start()]))
        out.append(ANY if any_number else float(m.group()))
        pos = m.end()
    out.append(re.sub(r"\s+", "", line[pos:]))
    return [t for t in out if t != ""]


def same_line(expected: list, actual: list) -> bool:
    if len(expected) != len(actual):
        return False
    for e, a in zip(expected, actual):
        if e is ANY or a is ANY:
            if not (isinstance(e, float) or isinstance(a, float) or e is a):
                return False
            continue
        if isinstance(e, float) != isinstance(a, float):
            return False
        if isinstance(e, float) and not abs(e - a) <= ATOL + RTOL * max(abs(e), abs(a)):
            return False
        if isinstance(e, str) and e != a:
            return False
    return True


def matches(expected: str, actual: str, vary: str | None = None) -> bool:
    """``actual`` shows what ``expected`` shows, up to whitespace, number formatting and ``...`` lines."""
    pattern = re.compile(vary) if vary else None
    exp = [line.strip() for line in expected.splitlines() if line.strip()]
    act = [tokens(line, pattern) for line in actual.splitlines() if line.strip()]

    @cache
    def fit(i: int, j: int) -> bool:
        if i == len(exp):
            return j == len(act)
        if exp[i] == "...":
            return any(fit(i + 1, k) for k in range(j, len(act) + 1))
        return j < len(act) and same_line(tokens(exp[i], pattern), act[j]) and fit(i + 1, j + 1)

    return fit(0, 0)


def run_python(code: str, ns: dict, where: str) -> str:
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        exec(compile(code, where, "exec"), ns)  # noqa: S102 - our own documentation, the point of the test
    return buf.getvalue()


def commands(code: str) -> list[str]:
    """The commands of a bash block: comments dropped, backslash continuations joined."""
    joined = re.sub(r"\\\n\s*", " ", code)
    return [c for c in (re.sub(r"(^|\s)#.*$", "", line).strip() for line in joined.splitlines()) if c]


def run_bash(code: str, cwd: Path, where: str) -> str:
    out = []
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), os.environ.get("PYTHONPATH", "")]),
           "MPLBACKEND": "Agg"}
    for cmd in commands(code):
        argv = shlex.split(cmd)
        proc = subprocess.run([sys.executable, "-m", "chainrule.cli", *argv[1:]], cwd=cwd, env=env,
                              capture_output=True, text=True, timeout=120, check=False)
        assert proc.returncode == 0, f"{where}: `{cmd}` failed ({proc.returncode}):\n{proc.stderr[-2000:]}"
        out.append(proc.stdout)
    return "".join(out)


def runnable_bash(code: str) -> bool:
    cmds = commands(code)
    return bool(cmds) and all(c.startswith("chainrule ") and not re.search(r"[|;&<>]", c) for c in cmds)


@cache
def example_output(stem: str) -> str:
    """What ``examples/<stem>_*.py`` prints in full mode, its figures written to a temporary directory."""
    import tempfile

    path = next((ROOT / "examples").glob(f"{stem}_*.py"))
    spec = importlib.util.spec_from_file_location(path.stem, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    buf = io.StringIO()
    with tempfile.TemporaryDirectory() as tmp, contextlib.redirect_stdout(buf):
        kwargs = {"out": tmp} if "out" in module.main.__code__.co_varnames else {}
        module.main(quick=False, **kwargs)
        return buf.getvalue().replace(tmp, "docs/figures")


def check(expected: Block, actual: str, where: str) -> None:
    assert matches(expected.code, actual, expected.marker("vary")), (
        f"{where}: the output shown at line {expected.line} differs from what the code prints.\n"
        f"--- shown\n{expected.code}\n--- printed\n{actual}")


def run_file(path: Path, tmp_path: Path) -> int:
    """Run every block of one markdown file; returns how many blocks ran or were compared."""
    rel = path.relative_to(ROOT)
    blocks, ns, done, printed = parse(path.read_text()), {"__name__": "__docs__"}, 0, None
    for b in blocks:
        where = f"{rel}:{b.line}"
        assert b.lang in LANGS, f"{where}: a fence needs a language, one of {sorted(LANGS)} (got {b.lang!r})"
        skip = b.marker("no-run")
        if skip is not None:
            assert skip, f"{where}: `<!-- no-run: why -->` needs its reason"
            printed = None
            continue
        if b.lang == "python":
            printed = run_python(b.code, ns, where)
        elif b.lang == "bash":
            assert runnable_bash(b.code), (f"{where}: only `chainrule ...` commands run here; mark the block "
                                           "`<!-- no-run: why -->` (it installs, launches MPI, or takes minutes)")
            printed = run_bash(b.code, tmp_path, where)
        elif (stem := b.marker("output")) is not None:
            check(b, example_output(stem), where)
        elif b.after_code and printed is not None:
            check(b, printed, where)
        else:
            continue                               # a display block (a file tree)
        done += 1
    return done


@pytest.fixture
def _in_tmp(tmp_path, monkeypatch):
    import matplotlib

    matplotlib.use("Agg")
    monkeypatch.chdir(tmp_path)
    from threadpoolctl import threadpool_limits

    with threadpool_limits(1):                     # small problems: BLAS threads only contend with other tests
        yield tmp_path


@pytest.mark.parametrize("path", FILES, ids=lambda p: str(p.relative_to(ROOT)))
def test_markdown_blocks_run_and_show_their_output(path, _in_tmp):
    run_file(path, _in_tmp)


def _code_lines(code: str) -> list[str]:
    """Lines of Python with comments and all whitespace removed (blank lines dropped)."""
    return [n for n in (re.sub(r"\s+", "", re.sub(r"(^|\s)#.*$", "", line)) for line in code.splitlines()) if n]


def excerpt_gaps(excerpt: str, source: str) -> list[str]:
    """The lines of ``excerpt`` that are not lines of ``source`` in the same order (comments and
    whitespace aside; a line ``...`` stands for any number of skipped lines)."""
    src, pos, missing = _code_lines(source), 0, []
    for line, norm in ((raw, _code_lines(raw)) for raw in excerpt.splitlines()):
        if not norm or norm == ["..."]:
            continue
        if norm[0] in src[pos:]:
            pos = src.index(norm[0], pos) + 1
        else:
            missing.append(line.strip())
    return missing


@pytest.mark.parametrize("path", FILES, ids=lambda p: str(p.relative_to(ROOT)))
def test_no_run_excerpts_are_the_examples_lines(path):
    """A block skipped as "an excerpt of examples/NN_*.py" shows that example's own lines, in order, so it
    cannot drift from the code that runs (tests/test_examples.py runs the examples)."""
    for b in parse(path.read_text()):
        why = b.marker("no-run") or ""
        if m := re.search(r"excerpt of (examples/\d\d)_\*\.py", why):
            example = next(ROOT.glob(f"{m.group(1)}_*.py"))
            gaps = excerpt_gaps(b.code, example.read_text())
            assert not gaps, f"{path.name}:{b.line}: not lines of {example.name} (in this order): {gaps}"


def test_excerpt_gaps_finds_drift():
    src = "def f(x):\n    y = x + 1   # one\n    return y\n"
    assert excerpt_gaps("def f(x):\n    ...\n    return y", src) == []
    assert excerpt_gaps("y = x + 1\ndef f(x):", src) == ["def f(x):"]                  # out of order
    assert excerpt_gaps("def f(x):\n    y = x + 2", src) == ["y = x + 2"]            # drifted


FORMULA_SPAN = re.compile(r"`(?:\w+(?: \w+)*(?: [-+=] [\w ]+)+|[^`\n]*\^[^`\n]*|d\w+/d\w+[^`\n]*)`")


def formula_spans(text: str) -> list[str]:
    """Code spans of the prose (fences and comments left out) that read as formulas: ``a + b``, ``x^2``, ``dL/dx``."""
    prose = re.sub(r"<!--.*?-->", "", re.sub(r"```.*?```", "", text, flags=re.S), flags=re.S)
    return FORMULA_SPAN.findall(prose)


def test_the_guides_formulas_are_math_not_code_spans():
    assert formula_spans("`C x + c`, `x^2`, `dL/dz2 = 0.5`, `cr.fit(x, y)`, `lr=0.1`, $C x + c$") == [
        "`C x + c`", "`x^2`", "`dL/dz2 = 0.5`"]
    found = formula_spans((ROOT / "docs" / "guide.md").read_text())
    assert not found, f"docs/guide.md: write these formulas as $...$ math, not code spans: {found}"


# --- the runner itself: it must catch drift, or it proves nothing ---------------------------------------

def test_matches_normalises_whitespace_and_numbers_but_not_values():
    assert matches("tensor([0.8, 0.8])", "tensor([0.8000, 0.8])")
    assert matches("x =  1.   2", "x = 1.0 2.0\n\n")
    assert matches("2,097,152 params", "2097152 params")
    assert matches("ms\n--", "ms\n------")
    assert not matches("tensor([0.8, 0.8])", "tensor([1. , 0.8])")
    assert not matches("acc 0.97", "acc 0.95")
    assert not matches("loss", "loss 1")
    assert matches("a\n...\nz", "a\nb 1\nc 2\nz") and matches("a\n...\nz", "a\nz")
    assert not matches("a\n...\nz", "a\nb")
    assert matches("step 1.5 ms", "step 99 ms", vary="ms$") and not matches("step 1.5 ms", "step 99 ms")
    assert not matches("step 1.5 ms", "stop 99 ms", vary="ms$")


def test_runner_fails_on_drift_and_honours_no_run(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    good = tmp_path / "good.md"
    good.write_text("```python\nx = 2\nprint(x * 0.5)\n```\n\n```text\n1.0\n```\n\n"
                    "<!-- no-run: needs a browser -->\n```python\nraise SystemExit\n```\n"
                    "```python\nprint(x)\n```\n```text\n2\n```\n")
    monkeypatch.setattr(sys.modules[__name__], "ROOT", tmp_path)
    assert run_file(good, tmp_path) == 4
    bad = tmp_path / "bad.md"
    bad.write_text("```python\nprint(1 + 1)\n```\n```text\n3\n```\n")
    with pytest.raises(AssertionError, match="differs"):
        run_file(bad, tmp_path)
    bare = tmp_path / "bare.md"
    bare.write_text("```\nsome formula\n```\n")
    with pytest.raises(AssertionError, match="needs a language"):
        run_file(bare, tmp_path)
    pip = tmp_path / "pip.md"
    pip.write_text("```bash\npip install chainrule\n```\n")
    with pytest.raises(AssertionError, match="no-run"):
        run_file(pip, tmp_path)
