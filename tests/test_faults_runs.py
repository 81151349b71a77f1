"""The fault suite, part 2: writes that fail, runs that are killed or interrupted, run directories,
bad data and inconsistent distributed ranks (part 1, every file we read, is test_faults.py)."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from faults import assert_one_line_error, cli, copy_run, env, lines, trained_run

import chainrule as cr
from chainrule.checkpoint import latest_checkpoint, list_checkpoints, load_checkpoint
from chainrule.cli import main


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    return trained_run(tmp_path_factory.mktemp("runs"))


def _main(argv, capsys):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def _one_line(code, err, *needles):
    ls = lines(err)
    assert code == 2 and len(ls) == 1 and "Traceback" not in err, err
    for n in needles:
        assert n in ls[0], (n, ls[0])


def _tmp_files(d: Path) -> list[str]:
    return [n for n in os.listdir(d) if ".tmp-" in n]


# ----- writes that fail: ulimit -f, a full disk ---------------------------------------------------
def test_file_size_limit_during_a_checkpoint_write_names_the_last_good_checkpoint(tmp_path, run):
    d = copy_run(run, tmp_path)
    last = latest_checkpoint(d)
    before = Path(last).read_bytes()
    limit = max(os.path.getsize(d / "config.json"), 4096)  # config.json fits, a checkpoint does not
    assert os.path.getsize(last) > limit
    p = cli("train", "--resume", d, "--epochs", "5", "--quiet", fsize=limit)
    line = assert_one_line_error(p, "could not write the checkpoint", "epoch-0004.safetensors",
                                 f"the last good checkpoint is {last}")
    assert "File too large" in line
    assert Path(last).read_bytes() == before               # the previous checkpoint survives, bit for bit
    assert _tmp_files(d / "checkpoints") == []             # and no temporary is left behind
    assert main(["train", "--resume", str(d), "--epochs", "4", "--quiet"]) == 0  # and the run goes on from it


def test_full_disk_during_model_and_checkpoint_writes(tmp_path, monkeypatch):
    import errno

    import chainrule.io as crio
    m = cr.models.MLP([2, 3])
    path = tmp_path / "m.safetensors"
    cr.save(m, path)
    good = path.read_bytes()

    def full(fd):
        raise OSError(errno.ENOSPC, "No space left on device")
    monkeypatch.setattr(crio.os, "fsync", full)
    with pytest.raises(OSError, match=r"could not write the model file .*m.safetensors: No space left on device"):
        cr.save(cr.models.MLP([2, 3]), path)
    monkeypatch.undo()
    assert path.read_bytes() == good and _tmp_files(tmp_path) == []


def test_a_killed_writer_leaves_no_temporaries_for_the_next_run(tmp_path, run, capsys):
    d = copy_run(run, tmp_path)
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()  # a PID that no longer runs: what kill -9 mid-write leaves in the name
    stale = d / "checkpoints" / f".epoch-0004.safetensors.tmp-{dead.pid}"
    stale.write_bytes(b"\0" * 1000)
    assert _main(["train", "--resume", d, "--epochs", "4", "--quiet"], capsys)[0] == 0
    assert not stale.exists() and _tmp_files(d / "checkpoints") == []


def test_kill_9_during_training_then_resume_is_bit_identical(tmp_path):
    """SIGKILL as soon as a checkpoint write is seen in progress (or, failing that, mid-run), then
    --resume: the final weights equal an uninterrupted run's exactly."""
    common = ["--data", "digits", "--hidden", "256,256", "--batch-size", "64", "--lr", "0.003", "--dropout", "0.1",
              "--epochs", "6", "--quiet"]
    ref = tmp_path / "ref"
    assert cli("train", *common, "--out", ref).returncode == 0
    out = tmp_path / "killed"
    proc = subprocess.Popen([sys.executable, "-m", "chainrule.cli", "train", *common, "--out", str(out)], env=env(),
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    ckpt, t0 = out / "checkpoints", time.monotonic()
    while time.monotonic() - t0 < 120 and proc.poll() is None:
        names = os.listdir(ckpt) if ckpt.is_dir() else []
        if any(".tmp-" in n and not n.startswith(".epoch-0001") for n in names) or "epoch-0003.safetensors" in names:
            break  # mid-write of checkpoint 2 or later (epoch 1's is the one resume needs first)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL
    p = cli("train", "--resume", out, "--epochs", "6", "--quiet")
    assert p.returncode == 0, p.stderr
    assert _tmp_files(ckpt) == []
    a, b = cr.load(ref / "model.safetensors"), cr.load(out / "model.safetensors")
    assert all(np.array_equal(a[k].numpy(), b[k].numpy()) for k in a)


# ----- NaN weights --------------------------------------------------------------------------------
def test_nan_weights_warn_in_evaluate_and_stop_predict(tmp_path, run, capsys):
    d = copy_run(run, tmp_path)
    model = cr.load_model(d / "model.safetensors")
    model.state_dict()["layers.0.weight"].numpy()[0, 0] = np.nan
    cr.save(model, d / "model.safetensors")
    code, out, err = _main(["evaluate", d], capsys)
    assert code == 0 and "Traceback" not in err
    assert "warning: " in err and "NaN/Inf values in 1 tensor(s)" in err and all(ln.startswith("chainrule evaluate: warning")
                                                                                for ln in lines(err))
    csv_path = tmp_path / "x.csv"
    cfg = json.loads((d / "config.json").read_text())
    csv_path.write_text(",".join(cfg["feature_names"]) + "\n5,3,1,0.2\n")
    code, out, err = _main(["predict", d, "--data", f"csv:{csv_path}"], capsys)
    _one_line(code, err, "non-finite outputs for 1 of 1 rows")
    assert out == ""


# ----- run directories ----------------------------------------------------------------------------
def test_out_onto_an_existing_run_is_refused_unless_overwrite(tmp_path, run, capsys):
    d = copy_run(run, tmp_path)
    config = (d / "config.json").read_bytes()
    stale = d / "checkpoints" / "epoch-0099.safetensors"
    stale.write_bytes(Path(latest_checkpoint(d)).read_bytes())
    code, _, err = _main(["train", "--data", "iris", "--epochs", "2", "--out", d], capsys)
    _one_line(code, err, "already holds a run", f"--resume {d}", "--overwrite")
    assert (d / "config.json").read_bytes() == config and stale.exists()
    code, _, _ = _main(["train", "--data", "iris", "--epochs", "2", "--out", d, "--overwrite", "--quiet"], capsys)
    assert code == 0
    assert [os.path.basename(p) for p in list_checkpoints(d / "checkpoints")] == ["epoch-0001.safetensors",
                                                                                 "epoch-0002.safetensors"]
    assert json.loads((d / "metrics.json").read_text())["epochs"] == 2


def test_resume_below_the_epochs_done_changes_nothing(tmp_path, run, capsys):
    d = copy_run(run, tmp_path)
    before = {f: (d / f).read_bytes() for f in ("config.json", "history.json", "model.safetensors")}
    code, _, err = _main(["train", "--resume", d, "--epochs", "2"], capsys)
    _one_line(code, err, "already trained 3 epochs", "--epochs 2 is below that", "nothing was changed")
    assert {f: (d / f).read_bytes() for f in before} == before


def test_resume_says_where_it_continues(tmp_path, run, capsys):
    d = copy_run(run, tmp_path)
    code, out, _ = _main(["train", "--resume", d, "--epochs", "5", "--quiet"], capsys)
    assert code == 0 and "from epoch-0003.safetensors: epochs 4..5" in out and "5 epochs" in out


def test_epochs_zero_is_refused_for_a_new_run(tmp_path, capsys):
    code, _, err = _main(["train", "--data", "iris", "--epochs", "0", "--out", tmp_path / "r"], capsys)
    _one_line(code, err, "--epochs must be at least 1")
    assert not (tmp_path / "r").exists()


@pytest.mark.parametrize("sig, code, says", [(signal.SIGINT, 130, "interrupted"),
                                             (signal.SIGTERM, 143, "terminated (SIGTERM)")])
def test_ctrl_c_says_what_is_true_once_and_the_suggestion_works(tmp_path, sig, code, says):
    """Ctrl-C, and SIGTERM (kill, a batch scheduler), which used to end the run without a word."""
    out = tmp_path / "r"
    proc = subprocess.Popen([sys.executable, "-m", "chainrule.cli", "train", "--data", "digits", "--hidden", "512,512",
                             "--epochs", "200", "--out", str(out), "--quiet"], env=env(), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    t0 = time.monotonic()
    while not list_checkpoints(out / "checkpoints") and time.monotonic() - t0 < 120:
        time.sleep(0.05)
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=60)
    done = len(list_checkpoints(out / "checkpoints")) and int(os.path.basename(latest_checkpoint(out))[6:10])
    assert proc.returncode == code and "Traceback" not in err
    assert len(lines(err)) == 1 and f"train: {says}; the last checkpoint is epoch {done}" in err and f"--resume {out}" in err
    assert _tmp_files(out / "checkpoints") == []
    p = cli("train", "--resume", out, "--epochs", str(done + 1), "--quiet")
    assert p.returncode == 0 and f"epochs {done + 1}..{done + 1}" in p.stdout, p.stderr


def test_early_stopping_says_which_epochs_weights_were_kept(tmp_path, capsys):
    out = tmp_path / "r"
    code, stdout, _ = _main(["train", "--data", "iris", "--hidden", "32", "--lr", "0.05", "--epochs", "200",
                             "--early-stopping", "2", "--out", out, "--quiet"], capsys)
    assert code == 0
    hist = json.loads((out / "history.json").read_text())["epochs"]
    best = 1 + int(np.argmin([e["val_loss"] for e in hist]))
    assert len(hist) < 200
    assert (f"early stopping: val_loss did not improve for 2 epochs; stopped after epoch {len(hist)} and kept the "
            f"weights of epoch {best}") in stdout
    kept = load_checkpoint(latest_checkpoint(out))["callbacks"][0][1]["best_weights"]
    model = cr.load(out / "model.safetensors")
    assert all(np.array_equal(model[k].numpy(), kept[k]) for k in kept)
    code, stdout, _ = _main(["train", "--resume", out, "--epochs", "300", "--quiet"], capsys)
    assert code == 0 and f"early stopping had ended it after epoch {len(hist)}; nothing more to train" in stdout
    again = cr.load(out / "model.safetensors")
    assert all(np.array_equal(again[k].numpy(), kept[k]) for k in kept)  # still the best epoch's weights


# ----- data ---------------------------------------------------------------------------------------
def _write(path: Path, header, rows) -> Path:
    path.write_text(",".join(header) + "\n" + "\n".join(",".join(map(str, r)) for r in rows) + "\n")
    return path


def test_continuous_target_trains_a_regressor_reporting_r2_and_mae(tmp_path, capsys):
    rng = np.random.default_rng(0)
    X = rng.standard_normal((400, 3))
    y = 300 + 50 * X[:, 0] - 20 * X[:, 1] + rng.normal(0, 2, 400)
    path = _write(tmp_path / "houses.csv", ["a", "b", "c", "price"], [[*x, f"{t:.2f}"] for x, t in zip(X, y)])
    out = tmp_path / "r"
    code, stdout, err = _main(["train", "--data", f"csv:{path}", "--hidden", "16", "--lr", "0.01", "--epochs", "40",
                               "--out", out, "--quiet"], capsys)
    assert code == 0 and "training a regressor (R^2, MAE)" in err
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["test_r2"] > 0.9 and metrics["test_mae"] < 15  # the price's std is about 54
    assert f"test R^2 {metrics['test_r2']:.4f}" in stdout
    code, stdout, _ = _main(["evaluate", out], capsys)
    assert code == 0 and f"R^2 {metrics['test_r2']:.4f}" in stdout
    code, stdout, _ = _main(["predict", out, "--data", f"csv:{path}"], capsys)
    pred = np.array([float(v) for v in stdout.split()[1:]])
    assert code == 0 and np.mean(np.abs(pred - y)) < 15
    code, _, err = _main(["train", "--data", f"csv:{path}", "--task", "classification", "--out", tmp_path / "c"], capsys)
    _one_line(code, err, "non-integer numbers", "regression")


def test_duplicate_column_names_are_refused(tmp_path, capsys):
    path = _write(tmp_path / "d.csv", ["a", "a", "y"], [[1, 2, 0], [3, 4, 1]] * 10)
    code, _, err = _main(["train", "--data", f"csv:{path}", "--out", tmp_path / "r"], capsys)
    _one_line(code, err, "duplicate column name(s) ['a']")


def test_huge_values_standardize_in_float64_and_beyond_float32_is_refused(tmp_path, capsys):
    rng = np.random.default_rng(1)
    X = rng.standard_normal((200, 2))
    y = (X[:, 0] > 0).astype(int)
    path = _write(tmp_path / "big.csv", ["a", "b", "y"], [[f"{x[0] * 1e30:.6e}", x[1], t] for x, t in zip(X, y)])
    out = tmp_path / "r"
    code, stdout, _ = _main(["train", "--data", f"csv:{path}", "--epochs", "20", "--lr", "0.01", "--out", out,
                             "--quiet"], capsys)
    assert code == 0
    cfg = json.loads((out / "config.json").read_text(), parse_constant=lambda c: pytest.fail(f"{c} in config.json"))
    assert np.isfinite(cfg["scaler"]["scale"]).all() and cfg["scaler"]["scale"][0] > 1e29
    assert json.loads((out / "metrics.json").read_text())["test_accuracy"] > 0.8  # not chance
    path2 = _write(tmp_path / "huge.csv", ["a", "y"], [[1e39, 0], [1, 1], [2, 0], [3, 1]] * 5)
    code, _, err = _main(["train", "--data", f"csv:{path2}", "--out", tmp_path / "r2"], capsys)
    _one_line(code, err, "column 'a' has 1e+39 at line 2, beyond float32's range")
    code, _, err = _main(["predict", out, "--data", f"csv:{_write(tmp_path / 'p.csv', ['a', 'b'], [[1e39, 0]])}"], capsys)
    _one_line(code, err, "beyond float32's range")


def test_csv_cell_size(tmp_path, capsys):
    path = tmp_path / "cell.csv"
    path.write_text("a,y\n" + "1" * (2 << 20) + ",0\n2,1\n")
    code, _, err = _main(["train", "--data", f"csv:{path}", "--out", tmp_path / "r"], capsys)
    _one_line(code, err, "not a readable CSV file", "cells are limited to 1,048,576 characters")
    path.write_text("a,y\n\"" + "x" * 200_000 + "\",0\n2,1\n")  # over the csv module's 128 KB, under ours
    code, _, err = _main(["train", "--data", f"csv:{path}", "--out", tmp_path / "r"], capsys)
    _one_line(code, err, "non-numeric value 'xxxx")
    assert len(err) < 400


def test_fit_validates_x_naming_row_and_column():
    X = np.ones((10, 3), np.float32)
    X[6, 2] = np.inf
    m = cr.models.MLP([3, 2])
    with pytest.raises(ValueError, match=r"train X contains Inf at row 6, column 2"):
        cr.fit(m, "cross_entropy", cr.optim.SGD(m.parameters(), lr=0.1), (X, np.arange(10) % 2), epochs=1, progress=False)
    X[6, 2] = 0
    Xv = X.copy()
    Xv[1, 0] = np.nan
    with pytest.raises(ValueError, match=r"val X contains NaN at row 1, column 0"):
        cr.fit(m, "cross_entropy", cr.optim.SGD(m.parameters(), lr=0.1), (X, np.arange(10) % 2), (Xv, np.arange(10) % 2),
               epochs=1, progress=False)


def test_float_one_hot_targets_work_with_the_default_metric():
    rng = np.random.default_rng(0)
    X = rng.standard_normal((60, 4)).astype(np.float32)
    labels = (X[:, 0] > 0).astype(np.int64)
    hist = []
    for y in (labels, np.eye(2, dtype=np.float32)[labels]):
        cr.manual_seed(0)
        m = cr.models.MLP([4, 8, 2])
        hist.append(cr.fit(m, "cross_entropy", cr.optim.SGD(m.parameters(), lr=0.1), (X, y), epochs=3, batch_size=20,
                           seed=0, progress=False))
    np.testing.assert_allclose(hist[0]["accuracy"], hist[1]["accuracy"])
    np.testing.assert_allclose(hist[0]["loss"], hist[1]["loss"], rtol=1e-5)


# ----- distributed: ranks that disagree -----------------------------------------------------------
@pytest.mark.parametrize("what, says", [("rows", "training rows (rank 0: 40, rank 1: 39)"),
                                        ("features", "feature shape (rank 0: (3,), rank 1: (4,))"),
                                        ("width", "parameter count"),
                                        ("dtype", "parameter dtypes"),
                                        ("batch", "batch size (rank 0: 8, rank 1: 7)")])
def test_ranks_that_disagree_are_named_at_start(what, says):
    from test_distributed import _env, _mpiexec
    script = Path(__file__).parent / "mpi_scripts" / "mismatch.py"
    p = subprocess.run([_mpiexec(), "-n", "2", sys.executable, str(script), "--what", what], capture_output=True,
                       text=True, timeout=90, env=_env())
    assert p.returncode != 0 and "trained" not in p.stdout
    assert f"rank 0: ValueError: distributed fit: the ranks disagree on the {says}" in p.stderr, p.stderr
    assert "Message truncated" not in p.stderr and "do not match" not in p.stderr


def test_a_csv_with_a_byte_order_mark_reads_its_first_column_name_plainly(tmp_path, capsys):
    """Excel's "CSV UTF-8" starts with a BOM: it must not become part of the first column's name
    (predict with a BOM-less CSV would then miss that column)."""
    rows = [[i % 7, (i * 3) % 5, i % 2] for i in range(60)]
    bom = tmp_path / "bom.csv"
    bom.write_bytes(b"\xef\xbb\xbf" + _write(tmp_path / "plain.csv", ["a", "b", "y"], rows).read_bytes())
    out = tmp_path / "r"
    assert _main(["train", "--data", f"csv:{bom}", "--epochs", "1", "--out", out, "--quiet"], capsys)[0] == 0
    assert json.loads((out / "config.json").read_text())["feature_names"] == ["a", "b"]
    code, stdout, _ = _main(["predict", out, "--data", f"csv:{tmp_path / 'plain.csv'}"], capsys)
    assert code == 0 and len(lines(stdout)) == 61


def test_a_csv_with_one_class_names_the_label(tmp_path, capsys):
    path = _write(tmp_path / "one.csv", ["a", "y"], [[i, 1] for i in range(20)])
    code, _, err = _main(["train", "--data", f"csv:{path}", "--out", tmp_path / "r"], capsys)
    _one_line(code, err, "has a single class (1): a classifier needs at least 2 classes")


def test_resume_and_evaluate_refuse_data_that_changed_since_training(tmp_path, capsys):
    """The same shape with other values used to resume silently on other data, re-standardised."""
    rows = [[i % 7, (i * 3) % 5, i % 2] for i in range(60)]
    path = _write(tmp_path / "d.csv", ["a", "b", "y"], rows)
    out = tmp_path / "r"
    assert _main(["train", "--data", f"csv:{path}", "--epochs", "2", "--out", out, "--quiet"], capsys)[0] == 0
    before = {f: (out / f).read_bytes() for f in ("config.json", "history.json", "model.safetensors")}
    rows[10][0] += 1
    _write(path, ["a", "b", "y"], rows)
    for argv in (["train", "--resume", out, "--epochs", "4"], ["evaluate", out]):
        code, _, err = _main(argv, capsys)
        _one_line(code, err, "d.csv has changed since the run was trained", "data_sha256")
    assert {f: (out / f).read_bytes() for f in before} == before
    rows[10][0] -= 1
    _write(path, ["a", "b", "y"], rows)
    assert _main(["train", "--resume", out, "--epochs", "4", "--quiet"], capsys)[0] == 0


def test_a_run_written_before_the_data_fingerprint_still_resumes(tmp_path, run, capsys):
    d = copy_run(run, tmp_path)
    cfg = json.loads((d / "config.json").read_text())
    assert len(cfg.pop("data_sha256")) == 64
    (d / "config.json").write_text(json.dumps(cfg))
    assert _main(["train", "--resume", d, "--epochs", "4", "--quiet"], capsys)[0] == 0
    assert json.loads((d / "config.json").read_text())["data_sha256"]  # and records it from now on


def test_fit_refuses_text_in_x_naming_row_and_column():
    X = np.full((10, 3), "1.5", dtype=object)
    X[7, 1] = "n/a"
    m = cr.models.MLP([3, 2])
    with pytest.raises(ValueError, match=r"train X has a non-numeric value 'n/a' at row 7, column 1"):
        cr.fit(m, "cross_entropy", cr.optim.SGD(m.parameters(), lr=0.1), (X, np.arange(10) % 2), epochs=1, progress=False)


def test_a_checkpoint_directory_that_is_a_file_names_the_path(tmp_path):
    (tmp_path / "ckpt").write_text("not a directory")
    m = cr.models.MLP([3, 2])
    X = np.ones((10, 3), np.float32)
    with pytest.raises(OSError, match=r"could not write the checkpoint .*ckpt.epoch-0001.safetensors: .*no earlier"):
        cr.fit(m, "cross_entropy", cr.optim.SGD(m.parameters(), lr=0.1), (X, np.arange(10) % 2), epochs=1,
               checkpoint_dir=tmp_path / "ckpt", progress=False)
    assert (tmp_path / "ckpt").read_text() == "not a directory"


def test_csv_errors_name_the_files_own_line_even_after_blank_lines(tmp_path, capsys):
    path = tmp_path / "gaps.csv"
    path.write_text("a,y\n\n1,0\n\n\n2,1\n3,0\nx,1\n" + "4,0\n" * 10)  # 'x' is on line 8 of the file
    code, _, err = _main(["train", "--data", f"csv:{path}", "--out", tmp_path / "r"], capsys)
    _one_line(code, err, "non-numeric value 'x' at line 8")
    path.write_text("a,y\n\n1,0\n2,1\n\n3,0.5\n" + "4,0\n" * 10)
    code, _, err = _main(["train", "--data", f"csv:{path}", "--task", "classification", "--out", tmp_path / "r"], capsys)
    _one_line(code, err, "(0.5 at line 6)")
