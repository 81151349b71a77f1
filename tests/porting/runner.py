"""Run a PyTorch script twice, once on torch and once on chainrule with only its imports rewritten, and compare.

Protocol: a script prints ``RESULT <name> <value> [<value> ...]`` lines; values that parse as numbers
(``True``/``False`` count as 1/0) are compared with ``numpy.isclose(ours, theirs, rtol, atol)``, other
tokens must be equal. The names must come in the same order in both runs. A script may declare in a
comment line::

    # porting: rtol=1e-4 atol=1e-6 loose=val_loss,accuracy loose_rtol=0.1 loose_atol=0.05

``loose`` names are compared with the loose tolerances: for numbers that depend on the random
generator, which differs between the two libraries (e.g. ``DataLoader(shuffle=True)`` orders).
A printed dtype is compared by name: ``torch.float32`` and ``chainrule.float32`` or ``float32`` match.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

SCRIPTS = Path(__file__).parent / "scripts"
SRC = Path(__file__).resolve().parents[2] / "src"

_IMPORT = re.compile(r"^(\s*)import torch((?:\.\w+)*)(\s+as\s+\w+)?\s*(#.*)?$")
_FROM = re.compile(r"^(\s*)from torch((?:\.\w+)*) import (.+)$")


class TorchRunFailed(RuntimeError):
    """The script does not run on torch itself: the script is wrong, not chainrule."""


class ChainruleRunFailed(AssertionError):
    """The rewritten script crashed on chainrule, or printed different numbers."""


def to_chainrule(source: str) -> str:
    """The same script with every torch import pointing at chainrule, and nothing else changed."""
    out = []
    for n, line in enumerate(source.splitlines(), 1):
        m, f = _IMPORT.match(line), _FROM.match(line)
        if m:
            indent, sub, alias, _ = m.groups()
            if alias:
                line = f"{indent}import chainrule{sub}{alias}"
            elif sub:
                line = f"{indent}import chainrule as torch; import chainrule{sub}"
            else:
                line = f"{indent}import chainrule as torch"
        elif f:
            indent, sub, names = f.groups()
            line = f"{indent}from chainrule{sub} import {names}"
        elif re.match(r"^\s*(import|from)\s+torch\b", line):
            raise ValueError(f"line {n}: cannot rewrite this torch import: {line.strip()!r}")
        out.append(line)
    return "\n".join(out) + "\n"


@dataclass
class Options:
    rtol: float = 1e-4
    atol: float = 1e-6
    loose: set[str] = field(default_factory=set)
    loose_rtol: float = 0.1
    loose_atol: float = 0.0


def options(source: str) -> Options:
    opts = Options()
    for m in re.finditer(r"^# porting:(.*)$", source, re.M):
        for key, value in (kv.split("=", 1) for kv in m.group(1).split()):
            setattr(opts, key, set(value.split(",")) if key == "loose" else float(value))
    return opts


def results(stdout: str) -> list[tuple[str, list[str]]]:
    return [(ln.split()[1], ln.split()[2:]) for ln in stdout.splitlines() if ln.startswith("RESULT ")]


def _env() -> dict:
    return dict(os.environ, PYTHONPATH=os.pathsep.join([str(SRC), str(SCRIPTS)]), OMP_NUM_THREADS="1",
                MKL_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1", PYTHONHASHSEED="0")


def _run(path: Path, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(path)], cwd=cwd, env=_env(), capture_output=True, text=True, timeout=600)


# Importing torch costs seconds per process; a "zygote" process imports it once and forks a fresh child
# per script (the child runs the script as __main__ and exits, so nothing leaks from one script to the next).
_ZYGOTE_CODE = r"""
import json, os, runpy, signal, sys, traceback
import torch
torch.set_num_threads(1)
for line in sys.stdin:
    req = json.loads(line)
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            signal.alarm(600)
            os.chdir(req["cwd"])
            sys.stdout, sys.stderr = open(req["stdout"], "w"), open(req["stderr"], "w")
            sys.argv = [req["script"]]
            sys.path.insert(0, os.path.dirname(req["script"]))
            runpy.run_path(req["script"], run_name="__main__")
            code = 0
        except SystemExit as e:
            code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
        except BaseException:
            traceback.print_exc()
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    print(json.dumps({"rc": os.waitstatus_to_exitcode(status)}), flush=True)
"""
_zygote: subprocess.Popen | None = None


def _run_torch(path: Path, cwd: Path) -> subprocess.CompletedProcess:
    """Run ``path`` on real torch in a child forked from the zygote (a plain subprocess where fork is missing)."""
    global _zygote
    if not hasattr(os, "fork"):
        return _run(path, cwd)
    if _zygote is None or _zygote.poll() is not None:
        _zygote = subprocess.Popen([sys.executable, "-c", _ZYGOTE_CODE], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                   env=_env(), text=True)
    out, err = cwd / "stdout.txt", cwd / "stderr.txt"
    _zygote.stdin.write(json.dumps({"script": str(path), "cwd": str(cwd), "stdout": str(out), "stderr": str(err)}) + "\n")
    _zygote.stdin.flush()
    rc = json.loads(_zygote.stdout.readline() or '{"rc": -1}')["rc"]
    return subprocess.CompletedProcess([str(path)], rc, out.read_text() if out.exists() else "",
                                       err.read_text() if err.exists() else "torch zygote died")


def _dtype_name(token: str) -> str:
    for prefix in ("torch.", "chainrule."):
        if token.startswith(prefix):
            return token[len(prefix):]
    return token


def _number(token: str) -> float | None:
    if token in ("True", "False"):
        return float(token == "True")
    try:
        return float(token)
    except ValueError:
        return None


def compare(ours: list, theirs: list, opts: Options) -> list[str]:
    """Every difference between the two runs' RESULT lines, as readable lines (empty: they agree)."""
    if [n for n, _ in ours] != [n for n, _ in theirs]:
        return [f"RESULT names differ: chainrule printed {[n for n, _ in ours]}, torch {[n for n, _ in theirs]}"]
    problems = []
    for (name, a), (_, b) in zip(ours, theirs):
        rtol, atol = (opts.loose_rtol, opts.loose_atol) if name in opts.loose else (opts.rtol, opts.atol)
        if len(a) != len(b):
            problems.append(f"{name}: {len(a)} values on chainrule, {len(b)} on torch")
            continue
        for i, (x, y) in enumerate(zip(a, b)):
            fx, fy = _number(x), _number(y)
            if fx is None or fy is None:
                same = _dtype_name(x) == _dtype_name(y)
            else:
                same = bool(np.isclose(fx, fy, rtol=rtol, atol=atol))
            if not same:
                problems.append(f"{name}[{i}]: chainrule {x} != torch {y} (rtol={rtol}, atol={atol})")
    return problems


def run_both(script: Path, workdir: Path) -> int:
    """Run ``script`` on torch and on chainrule; raise on a crash or a difference; return the number of values compared."""
    source = script.read_text()
    opts = options(source)
    (workdir / "torch").mkdir()
    (workdir / "chainrule").mkdir()
    theirs = _run_torch(script, workdir / "torch")
    if theirs.returncode != 0:
        raise TorchRunFailed(f"{script.name} fails on torch itself:\n{theirs.stderr[-3000:]}")
    expected = results(theirs.stdout)
    if not expected:
        raise TorchRunFailed(f"{script.name} printed no RESULT line on torch")
    ported = workdir / "chainrule" / script.name
    ported.write_text(to_chainrule(source))
    ours = _run(ported, workdir / "chainrule")
    if ours.returncode != 0:
        last = ours.stderr.strip().splitlines()[-1] if ours.stderr.strip() else f"exit code {ours.returncode}"
        raise ChainruleRunFailed(f"{script.name} crashes on chainrule: {last}\n{ours.stderr[-3000:]}")
    problems = compare(results(ours.stdout), expected, opts)
    if problems:
        raise ChainruleRunFailed(f"{script.name}: chainrule's numbers differ from torch's:\n" + "\n".join(problems[:30]))
    return sum(len(v) for _, v in expected)
