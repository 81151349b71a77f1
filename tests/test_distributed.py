"""chainrule.distributed: the single-process path in-process, the MPI path under `mpiexec -n 2/3`.

The MPI tests launch tests/mpi_scripts/*.py with the mpiexec that the `mpich` wheel installs next to
the interpreter (pip install -e ".[test]" pulls it in via the `distributed` extra). They never skip:
without mpiexec or mpi4py they fail and say what to install.
"""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import chainrule as cr
import chainrule.distributed as dist

SCRIPTS = Path(__file__).parent / "mpi_scripts"
SRC = Path(__file__).parents[1] / "src"
TIMEOUT = 90  # seconds; a hung job (the bug these tests guard against) fails instead of blocking CI


def _mpiexec() -> str:
    # Prefer the mpiexec next to this interpreter (the mpich wheel): it matches the libmpi mpi4py loads.
    here = Path(sys.executable).parent / "mpiexec"
    found = str(here) if here.exists() else shutil.which("mpiexec")
    try:
        import mpi4py  # noqa: F401
    except ImportError:
        found = None
    if not found:
        pytest.fail(f"MPI tests need mpi4py and mpiexec: {dist.INSTALL_HINT} (or pip install -e '.[test]')")
    return found


def _env():
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=os.pathsep.join([str(SRC), os.environ.get("PYTHONPATH", "")]))
    for v in ("PMI_RANK", "PMI_SIZE", "PMIX_RANK", "OMPI_COMM_WORLD_SIZE", "HYDRA_CONTROL_FD"):
        env.pop(v, None)
    return env


def run(k: int | None, script: str, *args, check=True) -> subprocess.CompletedProcess:
    """Run a helper script under `mpiexec -n k` (k=None: a plain single process, no launcher)."""
    cmd = [sys.executable, str(SCRIPTS / script), *map(str, args)]
    if k is not None:
        cmd = [_mpiexec(), "-n", str(k), *cmd]
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=TIMEOUT, env=_env())
    if check and p.returncode != 0:
        pytest.fail(f"{' '.join(cmd)} exited {p.returncode}\nstdout:\n{p.stdout}\nstderr:\n{p.stderr}")
    return p


def weights(path) -> list[np.ndarray]:
    z = np.load(path)
    return [z[f"arr_{i}"] for i in range(4)]


def assert_same_weights(a, b, dtype):
    rtol, atol = (1e-5, 1e-6) if dtype == "float32" else (1e-10, 1e-12)
    for wa, wb in zip(weights(a), weights(b)):
        assert wa.dtype == np.dtype(dtype)
        np.testing.assert_allclose(wa, wb, rtol=rtol, atol=atol)


# ----- single process (no mpiexec) ------------------------------------------------------------------

def test_single_process_is_world_of_one():
    assert dist.init() == 0
    assert (dist.rank(), dist.world_size(), dist.is_main()) == (0, 1, True)
    np.testing.assert_array_equal(dist.allreduce([1.5, 2.0]), [1.5, 2.0])
    assert dist.broadcast_object({"a": 1}) == {"a": 1}
    dist.barrier()
    p = cr.Tensor(np.ones(3, np.float32), requires_grad=True)
    p.grad = cr.Tensor(np.full(3, 2.0, np.float32))
    dist.broadcast_parameters([p])
    dist.GradientAllreducer([p]).reduce(3, 3)
    np.testing.assert_array_equal(p.grad._data, 2.0)   # world of one: the gradient is untouched


def test_import_chainrule_does_not_import_mpi4py():
    code = "import sys, chainrule; chainrule.distributed.init(); assert 'mpi4py' not in sys.modules, 'imported'"
    subprocess.run([sys.executable, "-c", code], check=True, env=_env(), timeout=TIMEOUT)


def test_without_mpi4py_single_process_works_and_mpiexec_says_what_to_install():
    block = "import sys; sys.modules['mpi4py'] = None; import chainrule.distributed as d; "
    ok = subprocess.run([sys.executable, "-c", block + "print(d.init(), d.world_size(), d.is_main())"],
                        capture_output=True, text=True, env=_env(), timeout=TIMEOUT)
    assert ok.stdout.split() == ["0", "1", "True"], ok.stderr
    env = dict(_env(), PMI_SIZE="2", PMI_RANK="0")   # as if started by `mpiexec -n 2`
    bad = subprocess.run([sys.executable, "-c", block + "d.init()"], capture_output=True, text=True, env=env, timeout=TIMEOUT)
    assert bad.returncode != 0
    assert 'pip install "chainrule[distributed]"' in bad.stderr


@pytest.mark.parametrize("n,B,K", [(101, 10, 2), (101, 10, 3), (7, 4, 3), (5, 8, 7), (100, 10, 4)])
def test_sampler_shards_are_disjoint_cover_the_global_batch_and_ignore_k(n, B, K):
    samplers = [dist.DistributedSampler(n, B, seed=3, rank=r, world_size=K) for r in range(K)]
    ref = dist.DistributedSampler(n, B, seed=3, rank=0, world_size=1)
    for epoch in (0, 1):
        for s in samplers + [ref]:
            s.set_epoch(epoch)
        steps = list(zip(*samplers, ref))
        assert len(steps) == len(ref) == -(-n // B)
        for *shards, (whole, n_global) in steps:
            assert all(g == n_global == len(whole) for _, g in shards)
            np.testing.assert_array_equal(np.concatenate([i for i, _ in shards]), whole)  # disjoint, in order
            sizes = [len(i) for i, _ in shards]
            assert max(sizes) - min(sizes) <= 1
        assert sorted(np.concatenate([w for *_, (w, _) in steps])) == list(range(n))
    e0, e1 = (np.concatenate([w for w, _ in (ref.set_epoch(e), list(ref))[1]]) for e in (0, 1))
    assert not np.array_equal(e0, e1)   # reshuffled every epoch


def test_sampler_resume_skips_steps_and_validates():
    s = dist.DistributedSampler(50, 8, seed=0, rank=1, world_size=2)
    full = list(s)
    s.set_epoch(0, start_step=4)
    assert [i.tolist() for i, _ in s] == [i.tolist() for i, _ in full[4:]]
    with pytest.raises(ValueError, match="batch_size must be >= 1, got 0"):
        dist.DistributedSampler(10, 0, rank=0, world_size=1)
    with pytest.raises(ValueError, match=r"rank must be in \[0, 2\), got 2"):
        dist.DistributedSampler(10, 2, rank=2, world_size=2)


def test_dropout_seeds_differ_per_rank_and_repeat():
    seeds = {dist._dropout_seed(0, 1, 5, r) for r in range(4)}
    assert len(seeds) == 4
    assert dist._dropout_seed(0, 1, 5, 2) == dist._dropout_seed(0, 1, 5, 2)
    assert dist._dropout_seed(0, 1, 5, 2) != dist._dropout_seed(0, 1, 6, 2)


def test_single_process_fit_matches_plain_loop(tmp_path):
    run(None, "train_tiny.py", "--mode", "ref", "--opt", "adam", "--l2", "1e-3", "--out", tmp_path / "ref.npz")
    run(None, "train_tiny.py", "--opt", "adam", "--l2", "1e-3", "--dropout", "0", "--out", tmp_path / "one.npz")
    assert int(np.load(tmp_path / "one.npz")["world"]) == 1
    assert_same_weights(tmp_path / "one.npz", tmp_path / "ref.npz", "float32")


@pytest.mark.parametrize("n,k", [(10, 3), (1, 3), (0, 2), (101, 7), (8, 8)])
def test_shard_bounds_match_array_split(n, k):
    parts = np.array_split(np.arange(n), k)
    assert [dist.shard_bounds(n, k, r) for r in range(k)] == [(int(p[0]) if len(p) else sum(map(len, parts[:r])),
                                                             sum(map(len, parts[:r + 1]))) for r, p in enumerate(parts)]


def test_fit_refuses_closure_optimizers():
    class Newtonish:
        requires_closure = True
        def state_dict(self): return {}
        def zero_grad(self): pass
    model = cr.models.MLP([2, 3])
    with pytest.raises(ValueError, match="Newtonish re-evaluates the loss"):
        dist.fit(model, "cross_entropy", Newtonish(), (np.zeros((4, 2), np.float32), np.array([0, 1, 0, 1])), epochs=1)


# ----- under mpiexec ---------------------------------------------------------------------------------

CASES = [("sgd", "float32", 0.0), ("sgd", "float64", 1e-3), ("momentum", "float32", 1e-3),
         ("momentum", "float64", 1e-3), ("adam", "float32", 1e-3), ("adam", "float64", 0.0)]


@pytest.mark.parametrize("k", [2, 3])
@pytest.mark.parametrize("opt,dtype,l2", CASES)
def test_k_ranks_match_one_rank(tmp_path, k, opt, dtype, l2):
    """n=101, B=10: the last global batch has one example, so with K=2/3 some ranks get an empty shard;
    with K=3 every other batch splits 4/3/3."""
    args = ["--opt", opt, "--dtype", dtype, "--l2", l2]
    run(None, "train_tiny.py", "--mode", "ref", *args, "--out", tmp_path / "ref.npz")
    p = run(k, "train_tiny.py", *args, "--out", tmp_path / "dist.npz")
    assert [line.split()[:2] for line in p.stdout.splitlines()] == [["epoch", f"{e}/3"] for e in (1, 2, 3)]  # rank 0 only
    z = np.load(tmp_path / "dist.npz")
    assert int(z["world"]) == k
    assert float(z["spread"]) == 0.0        # every replica holds bit-identical weights
    assert_same_weights(tmp_path / "dist.npz", tmp_path / "ref.npz", dtype)
    ref = np.load(tmp_path / "ref.npz")     # training and validation metrics reduced over ranks
    for key in ("loss", "val_loss", "val_accuracy"):
        np.testing.assert_allclose(z[key], ref[key], rtol=1e-5, err_msg=key)


def test_small_buckets_split_the_reduction_and_stay_exact(tmp_path):
    """bucket_bytes=256 puts each tensor of the 8-16-3 MLP (512, 64, 192, 12 bytes) in its own or a
    shared bucket: several Allreduce calls per step, same result."""
    run(None, "train_tiny.py", "--mode", "ref", "--opt", "adam", "--out", tmp_path / "ref.npz")
    run(3, "train_tiny.py", "--opt", "adam", "--bucket-bytes", 256, "--out", tmp_path / "dist.npz")
    assert_same_weights(tmp_path / "dist.npz", tmp_path / "ref.npz", "float32")


def test_buckets_respect_size_and_dtype():
    ps = [cr.Tensor(np.zeros(n, dt), requires_grad=True) for n, dt in
          [(100, np.float32), (100, np.float32), (300, np.float32), (10, np.float64), (10, np.float32)]]
    frozen = cr.Tensor(np.zeros(5, np.float32))          # requires_grad=False: never reduced
    buckets = dist.GradientAllreducer(ps + [frozen], bucket_bytes=800).buckets
    assert [[p._data.size for p in b.params] for b in buckets] == [[100, 100], [300], [10], [10]]
    assert [b.buf.dtype for b in buckets] == [np.float32, np.float32, np.float64, np.float32]
    assert [b.buf.size for b in buckets] == [200, 300, 10, 10]


def test_dropout_runs_are_reproducible_and_replicas_agree(tmp_path):
    for name in ("a", "b"):
        run(2, "train_tiny.py", "--dropout", "0.3", "--out", tmp_path / f"{name}.npz")
    run(2, "train_tiny.py", "--out", tmp_path / "nodrop.npz")
    a, b, c = (weights(tmp_path / f"{x}.npz") for x in ("a", "b", "nodrop"))
    assert all(np.array_equal(x, y) for x, y in zip(a, b))
    assert not np.allclose(a[0], c[0])
    assert float(np.load(tmp_path / "a.npz")["spread"]) == 0.0


@pytest.mark.parametrize("mode,resume_k", [("raise", 3), ("exit", None), ("kill", 2)])
def test_failing_rank_aborts_job_and_run_resumes_with_other_world_size(tmp_path, mode, resume_k):
    """Rank 1 fails in epoch 2 (raises, os._exit()s or is SIGKILLed): the job ends non-zero instead of hanging
    (TIMEOUT), epoch 1's checkpoint is intact, and resuming it with 3, 1 or 2 ranks lands on the
    uninterrupted single-process weights."""
    from chainrule.train import latest_checkpoint, load_checkpoint

    ckpt = tmp_path / "ckpt"
    common = ["--opt", "momentum", "--l2", "1e-3", "--ckpt", ckpt]
    p = run(2, "train_tiny.py", *common, "--fail-rank", 1, "--fail-epoch", 2, "--fail-step", 4, "--fail-mode", mode,
            "--out", tmp_path / "x.npz", check=False)
    assert p.returncode != 0
    assert not (tmp_path / "x.npz").exists()
    if mode == "raise":
        assert "rank 1: RuntimeError: injected failure at epoch 2 batch 4" in p.stderr
    elif mode == "kill":
        assert "BAD TERMINATION" in p.stdout + p.stderr and "signal 9" in p.stdout + p.stderr   # MPICH's report
    # os._exit: the rank can say nothing; the non-zero status and the prompt end are the guarantee
    last = latest_checkpoint(ckpt)
    assert os.path.basename(last) == "epoch-0001.safetensors"
    assert load_checkpoint(last)["epoch"] == 1

    r = run(resume_k, "train_tiny.py", *common, "--resume", "--out", tmp_path / "resumed.npz")
    assert "resumed from" in r.stdout and "at epoch 1 with" in r.stdout
    assert "epoch   1/3" not in r.stdout and "epoch   3/3" in r.stdout
    run(None, "train_tiny.py", "--mode", "ref", "--opt", "momentum", "--l2", "1e-3", "--out", tmp_path / "ref.npz")
    assert_same_weights(tmp_path / "resumed.npz", tmp_path / "ref.npz", "float32")


def test_uncaught_exception_outside_fit_aborts_instead_of_hanging():
    """Without init()'s excepthook rank 0 would wait in barrier() forever (mpiexec never returns)."""
    p = run(2, "raise_outside_fit.py", check=False)
    assert p.returncode != 0
    assert "rank 1: ValueError: bad input file on rank 1" in p.stderr
    assert "unreachable" not in p.stdout


def _cli(k, *args):
    if k is None:
        cmd = [sys.executable, "-c", "import sys; from chainrule.cli import main; sys.exit(main())", *map(str, args)]
    else:
        cmd = [_mpiexec(), "-n", str(k), sys.executable, "-m", "chainrule.distributed", *map(str, args)]
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=TIMEOUT, env=_env())
    assert p.returncode == 0, f"{cmd}\n{p.stdout}\n{p.stderr}"
    return p


def test_cli_train_distributed_matches_single_process_and_resumes_with_other_k(tmp_path):
    import json
    hist = lambda d: json.load(open(d / "history.json"))
    common = ["--data", "moons", "--batch-size", "30", "--seed", "1"]
    p = _cli(2, "train", *common, "--epochs", 2, "--out", tmp_path / "d")
    _cli(None, "train", *common, "--epochs", 2, "--out", tmp_path / "s")
    assert p.stdout.count("chainrule train:") == 1 and p.stdout.count("epoch   2/2") == 1   # rank 0 alone prints
    assert {f.name for f in (tmp_path / "d").iterdir()} >= {"config.json", "history.json", "model.safetensors", "checkpoints"}
    _cli(3, "train", "--resume", tmp_path / "d", "--epochs", 4)        # checkpointed by 2 ranks, resumed by 3
    _cli(None, "train", "--resume", tmp_path / "s", "--epochs", 4)
    d, s = hist(tmp_path / "d"), hist(tmp_path / "s")
    assert len(d["epochs"]) == len(s["epochs"]) == 4
    for key in ("loss", "val_loss", "accuracy"):
        np.testing.assert_allclose([e[key] for e in d["epochs"]], [e[key] for e in s["epochs"]], rtol=1e-5, err_msg=key)


def test_cli_user_error_on_rank_0_ends_the_job_with_one_line(tmp_path):
    cmd = [_mpiexec(), "-n", "2", sys.executable, "-m", "chainrule.distributed", "train", "--resume", tmp_path / "missing"]
    p = subprocess.run(list(map(str, cmd)), capture_output=True, text=True, timeout=TIMEOUT, env=_env())
    assert p.returncode != 0
    assert "rank 0: chainrule train: error: " in p.stderr and "missing/config.json" in p.stderr
    assert "Traceback" not in p.stderr


def test_unpacking_a_bucket_never_writes_into_a_gradient_array_shared_with_another_parameter():
    """Regression: autograd may hand two parameters the same gradient ndarray (e.g. both summands of
    a + b). Writing the reduced values into it in place changed the next bucket's input."""
    a, b = (cr.Tensor(np.zeros(4, np.float32), requires_grad=True) for _ in range(2))
    shared = np.arange(4, dtype=np.float32)
    a.grad, b.grad = cr.Tensor(shared), cr.Tensor(shared)
    first, second = dist.GradientAllreducer([a, b], bucket_bytes=16).buckets   # one parameter per bucket
    first.pack_grads(0.5)
    first.buf += 10                     # stands in for the Allreduce: the other rank's contribution
    first.unpack_grads()
    second.pack_grads(0.5)
    np.testing.assert_array_equal(second.buf, 0.5 * np.arange(4))
    np.testing.assert_array_equal(shared, np.arange(4))
    np.testing.assert_array_equal(a.grad._data, 0.5 * np.arange(4) + 10)


def test_chainrule_train_distributed_flag_runs_data_parallel(tmp_path):
    """`mpiexec -n 2 chainrule train --distributed` (the issue's spelling) equals the -m entry point."""
    import json
    common = ["train", "--data", "moons", "--batch-size", "30", "--seed", "1", "--epochs", "2"]
    flag = [_mpiexec(), "-n", "2", sys.executable, "-c", "import sys; from chainrule.cli import main; sys.exit(main())",
            *common, "--distributed", "--out", str(tmp_path / "flag")]
    p = subprocess.run(flag, capture_output=True, text=True, timeout=TIMEOUT, env=_env())
    assert p.returncode == 0, p.stderr
    assert p.stdout.count("epoch   2/2") == 1  # rank 0 alone prints
    _cli(2, *common, "--out", tmp_path / "m")
    a, b = (json.load(open(tmp_path / d / "history.json"))["epochs"] for d in ("flag", "m"))
    np.testing.assert_allclose([e["loss"] for e in a], [e["loss"] for e in b], rtol=1e-6)


def test_fit_distributed_true_in_one_process_is_plain_fit():
    """cr.fit(..., distributed=True) without mpiexec is a world of one: same weights as cr.fit."""
    rng = np.random.default_rng(0)
    X, y = rng.standard_normal((40, 3)).astype(np.float32), rng.integers(0, 2, 40)
    out = []
    for distributed in (False, True):
        cr.manual_seed(0)
        model = cr.models.MLP([3, 8, 2])
        opt = cr.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
        cr.fit(model, "cross_entropy", opt, (X, y), epochs=2, batch_size=10, seed=0, progress=False,
               distributed=distributed)
        out.append([p.numpy().copy() for p in model.parameters()])
    for a, b in zip(*out):
        np.testing.assert_allclose(a, b, rtol=1e-6)
