"""The project is a real package: `python -m build` makes an sdist and a wheel that `twine check`
accepts, the wheel carries every file of the package, and, installed into a fresh virtual
environment, it runs `chainrule --version`, `chainrule train` and `chainrule export` from a
directory outside the checkout (so the wheel, not the source tree, is what runs).

Slow (about a minute): marked `package`; CI runs it with the rest (`python -m pytest`)."""

import os
import re
import shutil
import subprocess
import sys
import tarfile
import venv
import zipfile
from pathlib import Path

import pytest

import chainrule

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.package


def _env():
    """The environment without anything that would put the checkout on the path."""
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV")}
    env["PIP_DISABLE_PIP_VERSION_CHECK"] = "1"
    return env


def _run(cmd, cwd, timeout=300):
    res = subprocess.run([str(c) for c in cmd], cwd=cwd, env=_env(), capture_output=True, text=True, timeout=timeout)
    assert res.returncode == 0, f"{cmd} failed ({res.returncode}):\n{res.stdout[-3000:]}\n{res.stderr[-3000:]}"
    return res.stdout


def _package_files():
    """The files under src/chainrule that are not Python bytecode, relative to src/."""
    src = ROOT / "src"
    return {p.relative_to(src).as_posix() for p in (src / "chainrule").rglob("*")
            if p.is_file() and "__pycache__" not in p.parts and p.suffix not in (".pyc", ".pyo")}


@pytest.fixture(scope="module")
def dist(tmp_path_factory):
    """sdist and wheel built from a copy of the sources (building writes egg-info and build/ next to them)."""
    tmp = tmp_path_factory.mktemp("build")
    copy = tmp / "src-copy"
    copy.mkdir()
    for name in ("pyproject.toml", "README.md", "CHANGELOG.md", "MANIFEST.in"):
        shutil.copy(ROOT / name, copy / name)
    shutil.copytree(ROOT / "src", copy / "src", ignore=shutil.ignore_patterns("__pycache__", "*.egg-info", "*.pyc"))
    # --no-isolation: build with this environment's setuptools instead of downloading one per run
    _run([sys.executable, "-m", "build", "--no-isolation", "--outdir", tmp / "dist", copy], cwd=tmp, timeout=600)
    return tmp / "dist"


def test_build_makes_an_sdist_and_a_wheel_twine_accepts(dist):
    v = chainrule.__version__
    names = sorted(p.name for p in dist.iterdir())
    assert names == [f"chainrule-{v}-py3-none-any.whl", f"chainrule-{v}.tar.gz"]
    out = _run([sys.executable, "-m", "twine", "check", "--strict", *sorted(dist.iterdir())], cwd=dist)
    assert out.count("PASSED") == 2


def test_the_wheel_and_sdist_carry_every_package_file(dist):
    v = chainrule.__version__
    with zipfile.ZipFile(dist / f"chainrule-{v}-py3-none-any.whl") as z:
        wheel = set(z.namelist())
        meta = z.read(f"chainrule-{v}.dist-info/METADATA").decode()
        entry_points = z.read(f"chainrule-{v}.dist-info/entry_points.txt").decode()
    files = _package_files()
    assert "chainrule/py.typed" in files and "chainrule/onnx/_rnn.py" in files
    assert files <= wheel, f"missing from the wheel: {sorted(files - wheel)}"
    assert not [n for n in wheel if n.endswith((".pyc", ".pyo")) or "__pycache__" in n]
    assert re.search(rf"^Version: {re.escape(v)}$", meta, re.M) and "License-Expression: MIT" in meta
    assert "chainrule = chainrule.cli:main" in entry_points
    with tarfile.open(dist / f"chainrule-{v}.tar.gz") as t:
        sdist = {n.split("/", 1)[1] for n in t.getnames() if "/" in n}
    assert {"CHANGELOG.md", "README.md", "pyproject.toml"} <= sdist
    assert {f"src/{f}" for f in files} <= sdist


def test_the_wheel_installs_and_runs_in_a_fresh_venv(dist, tmp_path):
    """--system-site-packages so numpy/scikit-learn/onnx come from this environment; --no-deps so
    pip installs only the wheel. The checkout's editable install is on the system path too, after
    the venv's own site-packages: the import location proves which copy runs."""
    env_dir = tmp_path / "venv"
    venv.EnvBuilder(system_site_packages=True, with_pip=False).create(env_dir)
    bindir = env_dir / ("Scripts" if os.name == "nt" else "bin")
    py = bindir / "python"
    wheel = next(dist.glob("*.whl"))
    # this interpreter's pip, pointed at the new environment (the venv has no pip of its own)
    _run([sys.executable, "-m", "pip", "--python", py, "install", "--no-deps", "--no-index", wheel], cwd=tmp_path)
    work = tmp_path / "elsewhere"
    work.mkdir()
    where = _run([py, "-c", "import chainrule; print(chainrule.__file__)"], cwd=work).strip()
    assert Path(where).resolve().is_relative_to(env_dir.resolve()), where
    exe = bindir / "chainrule"
    assert _run([exe, "--version"], cwd=work).strip() == f"chainrule {chainrule.__version__}"
    out = _run([exe, "train", "--data", "iris", "--epochs", "1", "--hidden", "8", "--out", "run", "--quiet"], cwd=work)
    assert "test accuracy" in out and (work / "run" / "model.safetensors").exists()
    out = _run([exe, "export", "run", "--format", "onnx"], cwd=work)
    assert "onnxruntime reproduces" in out and (work / "run" / "model.onnx").exists()
