"""Shared helpers of the fault suite (tests/test_faults*.py): crafted files, a tiny trained run,
and runners that hold every case to the promise: one clear line (CLI: exit 2, no traceback), no
hang (subprocess timeouts), bounded memory (an address-space limit in the child)."""

from __future__ import annotations

import json
import os
import resource
import shutil
import struct
import subprocess
import sys
from pathlib import Path

SRC = Path(__file__).parents[1] / "src"
TIMEOUT = 120          # seconds: a reader blocked on a FIFO fails the test instead of hanging CI
MEMORY = 2 << 30       # bytes of address space for a child: /dev/zero read "to the end" dies on this


def env() -> dict:
    e = dict(os.environ, PYTHONPATH=os.pathsep.join([str(SRC), os.environ.get("PYTHONPATH", "")]), OMP_NUM_THREADS="1")
    e.pop("PMI_RANK", None)
    e.pop("PMI_SIZE", None)
    return e


def _limits(fsize: int | None):
    def apply():
        resource.setrlimit(resource.RLIMIT_AS, (MEMORY, MEMORY))
        if fsize is not None:
            resource.setrlimit(resource.RLIMIT_FSIZE, (fsize, fsize))
    return apply


def run(argv: list[str], fsize: int | None = None, timeout: float = TIMEOUT, cwd=None) -> subprocess.CompletedProcess:
    """``python ARGV`` in a child with bounded memory (and file size), killed after ``timeout``."""
    return subprocess.run([sys.executable, *map(str, argv)], capture_output=True, text=True, timeout=timeout,
                          env=env(), preexec_fn=_limits(fsize), cwd=cwd)


def cli(*args, fsize: int | None = None, timeout: float = TIMEOUT) -> subprocess.CompletedProcess:
    return run(["-m", "chainrule.cli", *args], fsize=fsize, timeout=timeout)


def python(code: str, timeout: float = TIMEOUT) -> subprocess.CompletedProcess:
    return run(["-c", code], timeout=timeout)


def lines(text: str) -> list[str]:
    return [ln for ln in text.splitlines() if ln.strip()]


def assert_one_line_error(p: subprocess.CompletedProcess, *needles: str, code: int = 2) -> str:
    """Exit ``code``, no traceback, exactly one line on stderr, containing every needle."""
    err = lines(p.stderr)
    assert p.returncode == code, f"exit {p.returncode}, stderr:\n{p.stderr}"
    assert "Traceback" not in p.stderr, p.stderr
    assert len(err) == 1, f"expected one line, got:\n{p.stderr}"
    for n in needles:
        assert n in err[0], f"{n!r} not in {err[0]!r}"
    return err[0]


def craft(header, data: bytes = b"", length: int | None = None) -> bytes:
    """A safetensors-shaped byte string: 8-byte length, header (dict -> JSON, or raw bytes), data."""
    raw = header if isinstance(header, bytes) else json.dumps(header).encode()
    return struct.pack("<Q", len(raw) if length is None else length) + raw + data


def deep(n: int) -> str:
    return "[" * n + "]" * n


W = {"dtype": "F32", "shape": [2, 3], "data_offsets": [0, 24]}

# name -> (bytes given the bytes of a valid file, what the error says)
CORRUPT = {
    "empty": (lambda ok: b"", "fewer than the 8-byte header"),
    "seven_bytes": (lambda ok: ok[:7], "fewer than the 8-byte header"),
    "truncated_half": (lambda ok: ok[: len(ok) // 2], "not a valid safetensors file"),
    "truncated_data": (lambda ok: ok[:-3], "not a valid safetensors file"),
    "length_2_63": (lambda ok: struct.pack("<Q", 1 << 63) + ok[8:], "header claims"),
    "length_past_end": (lambda ok: struct.pack("<Q", len(ok)) + ok[8:], "header claims"),
    "header_not_json": (lambda ok: craft(b"{oops", b"\0" * 8), "is not JSON"),
    "header_not_utf8": (lambda ok: craft(b"\xff\xfe{}"), "is not JSON"),
    "header_is_a_list": (lambda ok: craft([1, 2]), "must be a JSON object"),
    "header_nested_deep": (lambda ok: craft(('{"a": ' + deep(50_000) + "}").encode()), "nested deeper"),
    "metadata_nested_deep": (lambda ok: craft(('{"__metadata__": {"a": ' + deep(5000) + "}}").encode()), "nested deeper"),
    "bad_dtype": (lambda ok: craft({"w": dict(W, dtype="F8")}, b"\0" * 24), "bad entry"),
    "negative_shape": (lambda ok: craft({"w": dict(W, shape=[-2, 3])}, b"\0" * 24), "bad entry"),
    "offsets_past_end": (lambda ok: craft({"w": dict(W, data_offsets=[0, 4000])}, b"\0" * 24), "needs 24 bytes"),
    "overlap": (lambda ok: craft({"w": W, "v": W}, b"\0" * 24), "overlap"),
    "hole": (lambda ok: craft({"w": dict(W, data_offsets=[8, 32])}, b"\0" * 32), "a hole"),
    "metadata_not_strings": (lambda ok: craft({"__metadata__": {"a": 1}, "w": W}, b"\0" * 24), "must map strings"),
    "pickle_from_torch_save": (lambda ok: b"\x80\x04\x95" + b"\0" * 64, "chainrule never unpickles"),
    "zip_not_readable": (lambda ok: b"PK\x03\x04" + b"\0" * 100, "a zip file, e.g. from torch.save: only cr.load reads those"),
    "too_many_tensors": (lambda ok: craft({f"t{i}": {"dtype": "F32", "shape": [0], "data_offsets": [0, 0]}
                                           for i in range(70_000)}), "more than the limit of 65,536"),
    "header_over_limit": (lambda ok: craft(b" " * (17 << 20)), "(limit 16,777,216)"),
    "shape_past_int64": (lambda ok: craft({"w": dict(W, shape=[0, 1 << 64], data_offsets=[0, 0])}), "int64s"),
    "zero_size_shape_numpy_cannot_hold": (lambda ok: craft({"w": dict(W, shape=[1 << 32, 1 << 32, 0],
                                                                      data_offsets=[0, 0])}), "NumPy cannot hold"),
    "shape_of_100_dims": (lambda ok: craft({"w": dict(W, shape=[1] * 100, data_offsets=[0, 4])}, b"\0" * 4),
                          "at most 64"),
    "integer_of_5000_digits": (lambda ok: craft(('{"w": {"dtype": "F32", "shape": [1' + "0" * 5000
                                                 + '], "data_offsets": [0, 4]}}').encode(), b"\0" * 4), "not usable JSON"),
}


def trained_run(directory: Path, *extra: str) -> Path:
    """A small finished run (iris, 3 epochs) made in process: the fixture the faults corrupt."""
    from chainrule.cli import main
    out = directory / "run"
    code = main(["train", "--data", "iris", "--hidden", "8", "--epochs", "3", "--lr", "0.01", "--out", str(out),
                 "--quiet", *extra])
    assert code == 0
    return out


def copy_run(run: Path, where: Path) -> Path:
    dst = where / "copy"
    shutil.copytree(run, dst)
    return dst
