"""`chainrule train | evaluate | predict`: in process through chainrule.cli.main, plus one real call
of the installed console script."""

import csv
import io
import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest

import chainrule as cr
from chainrule.cli import main


def _run(argv, capsys):
    code = main(argv)
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture
def iris_csv(tmp_path):
    from sklearn.datasets import load_iris
    d = load_iris()
    path = tmp_path / "iris.csv"
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["sepal_length", "sepal_width", "petal_length", "petal_width", "species"])
        for x, t in zip(d.data, d.target):
            w.writerow([*x, d.target_names[t]])
    return path


def test_console_script_with_no_arguments_trains_on_digits(tmp_path):
    exe = shutil.which("chainrule") or pytest.fail("the chainrule console script is not installed (pip install -e .)")
    res = subprocess.run([exe, "train"], cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr
    assert "epoch  20/20" in res.stdout and "Traceback" not in res.stderr
    acc = float(res.stdout.split("test accuracy ")[1].split()[0])
    assert acc >= 0.95
    (run,) = os.listdir(tmp_path / "runs")
    assert run.startswith("digits-mlp-")
    files = set(os.listdir(tmp_path / "runs" / run))
    assert {"config.json", "history.json", "metrics.json", "loss_curve.png", "model.safetensors", "checkpoints"} <= files


def test_train_evaluate_predict_on_a_csv(tmp_path, iris_csv, capsys):
    out = tmp_path / "run"
    code, stdout, _ = _run(["train", "--data", f"csv:{iris_csv}", "--target", "species", "--epochs", "30", "--lr", "0.01",
                            "--hidden", "16", "--out", str(out), "--quiet"], capsys)
    assert code == 0 and "test accuracy" in stdout
    cfg = json.loads((out / "config.json").read_text())
    assert cfg["target_names"] == ["setosa", "versicolor", "virginica"] and cfg["hidden"] == [16]
    history = json.loads((out / "history.json").read_text())["epochs"]
    assert len(history) == 30 and history[-1]["loss"] < history[0]["loss"]
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["test_accuracy"] >= 0.9

    code, stdout, _ = _run(["evaluate", str(out)], capsys)
    assert code == 0 and f"accuracy {metrics['test_accuracy']:.4f}" in stdout

    code, stdout, _ = _run(["predict", str(out), "--data", f"csv:{iris_csv}", "--proba"], capsys)
    rows = list(csv.reader(io.StringIO(stdout)))
    assert rows[0] == ["prediction", "p_setosa", "p_versicolor", "p_virginica"] and len(rows) == 151
    truth = [r[-1] for r in csv.reader(open(iris_csv))][1:]
    assert np.mean([r[0] == t for r, t in zip(rows[1:], truth)]) >= 0.9
    assert all(abs(sum(float(v) for v in r[1:]) - 1) < 1e-4 for r in rows[1:])
    # the same predictions as the saved model gives directly
    from chainrule.io import load_model
    model = load_model(out / "model.safetensors")
    from chainrule.cli.rundir import standardize
    from chainrule.datasets import read_csv_features
    X = standardize(read_csv_features(iris_csv, cfg["feature_names"]), cfg["scaler"])
    assert [r[0] for r in rows[1:]] == [cfg["target_names"][k] for k in model.predict(X)]


def test_resumed_cli_run_ends_with_the_same_weights(tmp_path, capsys):
    common = ["--data", "iris", "--dropout", "0.2", "--hidden", "8", "--lr", "0.01", "--batch-size", "16", "--quiet"]
    assert _run(["train", *common, "--epochs", "4", "--out", str(tmp_path / "a")], capsys)[0] == 0
    assert _run(["train", *common, "--epochs", "2", "--out", str(tmp_path / "b")], capsys)[0] == 0
    code, stdout, _ = _run(["train", "--resume", str(tmp_path / "b"), "--epochs", "4"], capsys)
    assert code == 0 and "4 epochs" in stdout
    a, b = cr.load(tmp_path / "a" / "model.safetensors"), cr.load(tmp_path / "b" / "model.safetensors")
    assert list(a) == list(b) and all(np.array_equal(a[k]._data, b[k]._data) for k in a)


@pytest.mark.parametrize("argv", [
    ["--model", "logreg", "--data", "breast_cancer", "--optimizer", "sgd", "--lr", "0.1", "--batch-size", "0"],
    ["--model", "softmax", "--data", "moons", "--optimizer", "nesterov", "--lr", "0.1"],
    ["--data", "xor", "--hidden", "8,8", "--activation", "tanh", "--early-stopping", "3", "--optimizer", "rmsprop"],
])
def test_model_and_optimizer_options(tmp_path, capsys, argv):
    code, stdout, err = _run(["train", *argv, "--epochs", "5", "--out", str(tmp_path / "r"), "--quiet"], capsys)
    assert code == 0, err
    assert float(stdout.split("test accuracy ")[1].split()[0]) > 0.6
    assert _run(["evaluate", str(tmp_path / "r")], capsys)[0] == 0


@pytest.mark.parametrize("argv, message", [
    (["train", "--hidden", "12,x"], "--hidden wants comma-separated integers"),
    (["train", "--lr", "-1"], "must be >= 0"),
    (["train", "--data", "mnist"], "unknown data set 'mnist'"),
    (["train", "--optimizer", "lbfgs"], "invalid choice: 'lbfgs'"),
    (["train", "--model", "softmax", "--hidden", "8"], "apply to --model mlp"),
    (["train", "--data", "csv:/no/such.csv"], "no such CSV file"),
    (["train", "--dropout", "1.5"], "--dropout must be in [0, 1)"),
    (["evaluate", "/no/such/run"], "not a chainrule run directory"),
    (["predict", "/no/such/run"], "the following arguments are required: --data"),
    (["train", "--resume", "/no/such/run"], "not a chainrule run directory"),
])
def test_bad_arguments_are_one_line_errors(argv, message, capsys):
    try:
        code = main(argv)
    except SystemExit as e:  # argparse's own errors exit through the parser
        code = e.code
    _, err = capsys.readouterr()
    assert code == 2 and message in err and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1


def test_csv_with_a_missing_target_column(tmp_path, iris_csv, capsys):
    code, _, err = _run(["train", "--data", f"csv:{iris_csv}", "--target", "label", "--out", str(tmp_path / "r")], capsys)
    assert code == 2 and "no target column 'label'" in err and "species" in err


@pytest.mark.parametrize("cmd", ["train", "evaluate", "predict"])
def test_help_has_examples(cmd, capsys):
    with pytest.raises(SystemExit) as e:
        main([cmd, "--help"])
    assert e.value.code == 0 and "examples:" in capsys.readouterr().out


def test_interrupt_before_any_checkpoint_says_there_is_nothing_to_resume(tmp_path, capsys, monkeypatch):
    import chainrule.train as T

    def interrupted(*a, **k):
        raise KeyboardInterrupt

    monkeypatch.setattr(T, "fit", interrupted)
    code, _, err = _run(["train", "--data", "iris", "--out", str(tmp_path / "r")], capsys)
    # no checkpoint yet: "--resume" would fail, so the message says what is true, once
    assert code == 130 and "nothing to resume" in err and f"--out {tmp_path / 'r'} --overwrite" in err
    assert err.count("interrupted") == 1
    assert (tmp_path / "r" / "config.json").exists()  # written first, so the run can resume


def test_module_entry_point_runs(tmp_path):
    res = subprocess.run([sys.executable, "-m", "chainrule.cli", "train", "--help"], capture_output=True, text=True, timeout=120)
    assert res.returncode == 0 and "--early-stopping PATIENCE" in res.stdout


def test_version(capsys):
    with pytest.raises(SystemExit) as e:
        main(["--version"])
    assert e.value.code == 0 and capsys.readouterr().out.strip() == f"chainrule {cr.__version__}"


def test_train_the_mnist1d_cnn_and_gru_and_reload_them(tmp_path, capsys):
    """`--model cnn|gru` (the MNIST-1D paper's models): they train, save, evaluate from disk and export their width."""
    import json
    for model in ("cnn", "gru"):
        out = tmp_path / model
        code, stdout, _ = _run(["train", "--data", "mnist1d", "--model", model, "--hidden", "8", "--epochs", "1",
                                "--batch-size", "200", "--lr", "0.01", "--out", str(out), "--quiet"], capsys)
        assert code == 0
        cfg = json.loads((out / "config.json").read_text())
        assert cfg["model"] == model and cfg["hidden"] == [8]
        code, stdout, _ = _run(["evaluate", str(out)], capsys)
        assert code == 0 and "accuracy" in stdout
    code, _, err = _run(["train", "--data", "mnist1d", "--model", "gru", "--activation", "tanh", "--out",
                         str(tmp_path / "bad")], capsys)
    assert code == 2 and "--activation" in err
