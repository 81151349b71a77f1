"""Shared test helpers. The PyTorch oracle is optional locally but required in CI."""

import os

import numpy as np
import pytest

from chainrule import _blas

# The suite pins chainrule's BLAS (MKL when the test extra installed it, else NumPy; subprocesses inherit
# it): the default measured choice would time both libraries and write the user's cache directory, and
# its outcome depends on the machine's load. tests/test_blas.py exercises that choice explicitly.
if "CHAINRULE_BLAS" not in os.environ:
    os.environ["CHAINRULE_BLAS"] = "mkl" if _blas._load() else "numpy"
    _blas._from_environment()


def require_torch():
    """Import torch for an oracle test: skip when absent, except in CI where absence fails."""
    try:
        import torch
    except ImportError:
        if os.environ.get("CHAINRULE_REQUIRE_ORACLE"):
            pytest.fail("the PyTorch oracle (torch==2.13.0) is required here but not installed")
        pytest.skip("torch not installed (pip install -e '.[test]')")
    torch.set_num_threads(1)
    return torch


@pytest.fixture
def torch():
    return require_torch()


@pytest.fixture
def rng():
    return np.random.default_rng(0)


@pytest.fixture(scope="session")
def chromium_path():
    """Debian's chromium for the playground's browser tests (driven by Playwright; never a browser
    download). Installed here with apt-get when missing (CI runs as root); a failed install fails."""
    import fcntl
    import shutil
    import subprocess

    path = shutil.which("chromium")
    if path is None:
        with open("/tmp/chainrule-chromium-install.lock", "w") as lock:  # xdist workers install once
            fcntl.flock(lock, fcntl.LOCK_EX)
            path = shutil.which("chromium")
            if path is None:
                r = subprocess.run("apt-get update && apt-get install -y chromium", shell=True, capture_output=True,
                                   text=True, timeout=1200, env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"})
                path = shutil.which("chromium")
                if path is None:
                    pytest.fail(f"the browser tests need Debian's chromium; `apt-get install -y chromium` failed "
                                f"(exit {r.returncode}):\n{r.stdout[-1500:]}\n{r.stderr[-1500:]}")
    return path


@pytest.fixture(scope="module")
def playground_server():
    """A playground server on 127.0.0.1 and a free port, in a thread of this process (so a test can
    read its sessions); stopped after the module. Yields (base URL, app)."""
    import socket
    import threading
    import time

    import uvicorn

    from chainrule.web.server import create_app, warm_up

    warm_up()
    app = create_app(max_sessions=8)
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", ws_max_size=2 << 20))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 60
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            pytest.fail("the playground server did not start within 60 s")
        time.sleep(0.05)
    yield f"http://127.0.0.1:{sock.getsockname()[1]}", app
    server.should_exit = True
    thread.join(timeout=30)
    sock.close()
