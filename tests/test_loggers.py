"""CSVLogger and TensorBoard callbacks, read back with csv and TensorBoard's own EventAccumulator, and
the History as a pandas DataFrame."""

import csv
import json
import os

import numpy as np
import pandas as pd
import pytest
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

import chainrule as cr
from chainrule import datasets, models, optim
from chainrule.loggers import CSVLogger, TensorBoard, from_spec, history_to_dataframe
from chainrule.train import Callback


def _data():
    Xtr, Xte, ytr, yte = datasets.load_iris()
    mu, sd = Xtr.mean(0), Xtr.std(0)
    return ((Xtr - mu) / sd, ytr), ((Xte - mu) / sd, yte)


def _fit(epochs, callbacks, ckpt=None, resume=None):
    """Iris, an MLP and StepLR (so the learning rate changes): the same run whenever it is called."""
    train, val = _data()
    cr.manual_seed(0)
    model = models.MLP([4, 8, 3])
    opt = optim.Adam(model.parameters(), lr=0.05)
    sched = optim.lr_scheduler.StepLR(opt, step_size=2, gamma=0.5)
    return cr.fit(model, "cross_entropy", opt, train, val, epochs=epochs, batch_size=32, scheduler=sched,
                  callbacks=callbacks, seed=0, progress=False, checkpoint_dir=ckpt, resume=resume)


def _read_csv(path):
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    return rows[0].keys() if rows else [], rows


def test_csv_logger_writes_one_row_per_epoch(tmp_path):
    path = tmp_path / "logs" / "history.csv"
    h = _fit(4, [CSVLogger(path)])
    header, rows = _read_csv(path)
    assert list(header) == ["epoch", "train_loss", "train_accuracy", "val_loss", "val_accuracy", "lr", "time"]
    assert [int(r["epoch"]) for r in rows] == [1, 2, 3, 4]
    for r, e in zip(rows, h.epochs):  # repr of a float reads back exactly
        assert float(r["train_loss"]) == e["loss"] and float(r["val_accuracy"]) == e["val_accuracy"]
        assert float(r["lr"]) == e["lr"]
    assert [float(r["lr"]) for r in rows] == [0.05, 0.05, 0.025, 0.025]


def test_csv_logger_widens_its_header_when_a_column_appears(tmp_path):
    class Late(Callback):
        def on_epoch_end(self, epoch, logs):
            if epoch == 2:
                logs["grad_norm"] = 1.5

    path = tmp_path / "h.csv"
    _fit(3, [Late(), CSVLogger(path)])
    header, rows = _read_csv(path)
    assert list(header) == ["epoch", "train_loss", "train_accuracy", "train_grad_norm", "val_loss", "val_accuracy",
                            "lr", "time"]
    assert [r["train_grad_norm"] for r in rows] == ["", "1.5", ""]


def _resume_after_losing_the_last_checkpoint(tmp_path, callbacks_first, callbacks_second):
    """Train 4 epochs with checkpoints, drop the epoch-4 checkpoint (as if the run had died before
    writing it), then resume to 5 epochs: epoch 4 is trained (and logged) a second time."""
    ckpt = tmp_path / "ckpt"
    _fit(4, callbacks_first, ckpt=ckpt)
    os.remove(ckpt / "epoch-0004.safetensors")
    return _fit(5, callbacks_second, ckpt=ckpt, resume=ckpt)


def test_csv_logger_on_resume_keeps_the_epochs_up_to_the_checkpoint(tmp_path):
    path = tmp_path / "history.csv"
    h = _resume_after_losing_the_last_checkpoint(tmp_path, [CSVLogger(path)], [CSVLogger(path)])
    _, rows = _read_csv(path)
    assert [int(r["epoch"]) for r in rows] == [1, 2, 3, 4, 5]
    assert [float(r["train_loss"]) for r in rows] == h["loss"]


def _scalars(log_dir):
    acc = EventAccumulator(str(log_dir))
    acc.Reload()
    return acc, {t: [(s.step, s.value) for s in acc.Scalars(t)] for t in acc.Tags()["scalars"]}


def test_tensorboard_scalars_read_back_with_tensorboards_reader(tmp_path):
    h = _fit(3, [TensorBoard(tmp_path / "tb")])
    _, sc = _scalars(tmp_path / "tb")
    assert {"Loss/train", "Loss/val", "Accuracy/train", "Accuracy/val", "LearningRate", "Time/epoch"} <= set(sc)
    for tag, key in [("Loss/train", "loss"), ("Loss/val", "val_loss"), ("Accuracy/train", "accuracy"),
                     ("Accuracy/val", "val_accuracy"), ("LearningRate", "lr")]:
        assert [s for s, _ in sc[tag]] == [1, 2, 3]
        np.testing.assert_allclose([v for _, v in sc[tag]], h[key], rtol=1e-6)  # stored as float32
    assert [v for _, v in sc["LearningRate"]] == pytest.approx([0.05, 0.05, 0.025])


def test_tensorboard_on_resume_replaces_the_epochs_after_the_checkpoint(tmp_path):
    tb = tmp_path / "tb"
    h = _resume_after_losing_the_last_checkpoint(tmp_path, [TensorBoard(tb)], [TensorBoard(tb)])
    assert len([n for n in os.listdir(tb) if "tfevents" in n]) == 2  # one file per run
    _, sc = _scalars(tb)
    assert [s for s, _ in sc["Loss/train"]] == [1, 2, 3, 4, 5]  # epoch 4 of the first run purged
    np.testing.assert_allclose([v for _, v in sc["Loss/train"]], h["loss"], rtol=1e-6)


def test_tensorboard_first_used_on_a_resumed_run_writes_its_history(tmp_path):
    h = _resume_after_losing_the_last_checkpoint(tmp_path, [], [TensorBoard(tmp_path / "tb")])
    _, sc = _scalars(tmp_path / "tb")
    assert [s for s, _ in sc["Loss/val"]] == [1, 2, 3, 4, 5]
    np.testing.assert_allclose([v for _, v in sc["Loss/val"]], h["val_loss"], rtol=1e-6)


def test_history_to_dataframe():
    h = _fit(3, [])
    for source in (h, h.to_dict(), h.epochs):
        df = history_to_dataframe(source)
        assert isinstance(df, pd.DataFrame) and df.index.name == "epoch" and list(df.index) == [1, 2, 3]
        assert list(df["val_loss"]) == h["val_loss"] and "lr" in df.columns
    assert history_to_dataframe(cr.History([{"loss": 1.0}])).index.tolist() == [0]


def test_from_spec_names_the_loggers_and_their_files(tmp_path):
    csv_logger, tb = from_spec("csv, tensorboard,csv", tmp_path)
    assert isinstance(csv_logger, CSVLogger) and csv_logger.path == os.path.join(tmp_path, "history.csv")
    assert isinstance(tb, TensorBoard) and tb.log_dir == os.path.join(tmp_path, "tensorboard")
    assert from_spec(None, tmp_path) == [] and from_spec("", tmp_path) == []
    with pytest.raises(ValueError, match=r"unknown logger 'wandb'; choose from csv, tensorboard"):
        from_spec("csv,wandb", tmp_path)


def test_progress_bar_shows_each_epochs_batches_and_logs():
    from io import StringIO

    from chainrule.loggers import ProgressBar
    out = StringIO()
    h = _fit(2, [ProgressBar(file=out)])
    text = out.getvalue()
    n_batches = -(-len(_data()[0][1]) // 32)
    for e in (1, 2):
        assert f"epoch {e}/2" in text and f"{n_batches}/{n_batches}" in text
    final = text.rsplit("\r", 1)[-1]  # the last redraw: epoch 2's bar with its logs
    assert "epoch 2/2" in final and f"val_loss={h['val_loss'][-1]:.4f}" in final


def test_fit_verbose_levels_and_history_to_pandas(capsys):
    """Keras's verbose levels: 0 silent, 1 a bar per epoch (even off a terminal), 2 one line per epoch."""
    import chainrule as cr
    rng = np.random.default_rng(0)
    X, y = rng.standard_normal((40, 3)).astype(np.float32), rng.integers(0, 2, 40)
    outs = {}
    for level in (0, 1, 2):
        m = cr.models.MLP([3, 4, 2])
        h = cr.fit(m, cr.nn.functional.cross_entropy, cr.optim.SGD(m.parameters(), lr=0.1), (X, y), epochs=2,
                   batch_size=20, verbose=level)
        outs[level] = capsys.readouterr()
    assert outs[0].out == "" and outs[0].err == ""
    assert "epoch 2/2" in outs[1].err and outs[1].out == ""
    assert outs[2].out.count("\n") >= 2 and "loss" in outs[2].out
    df = h.to_pandas()
    assert list(df.index) == [1, 2] and df["loss"].tolist() == h["loss"]
    with pytest.raises(ValueError, match="verbose"):
        cr.fit(m, cr.nn.functional.cross_entropy, cr.optim.SGD(m.parameters(), lr=0.1), (X, y), epochs=1, verbose=3)


def test_cli_log_writes_csv_and_tensorboard(tmp_path, capsys):
    from chainrule.cli import main
    out = tmp_path / "run"
    assert main(["train", "--data", "iris", "--epochs", "2", "--log", "csv,tensorboard", "--out", str(out), "--quiet"]) == 0
    said = capsys.readouterr().out                                        # the user is told where the logs are
    assert "checkpoints/, history.csv, tensorboard/)" in said and f"tensorboard --logdir {out / 'tensorboard'}" in said
    header, rows = _read_csv(out / "history.csv")
    assert list(header)[:3] == ["epoch", "train_loss", "train_accuracy"] and [r["epoch"] for r in rows] == ["1", "2"]
    h = cr.History.from_dict(json.loads((out / "history.json").read_text()))
    assert [float(r["val_loss"]) for r in rows] == h["val_loss"]
    _, sc = _scalars(out / "tensorboard")                                 # what `tensorboard --logdir` would read
    for tag, key in [("Loss/train", "loss"), ("Loss/val", "val_loss"), ("Accuracy/val", "val_accuracy"), ("LearningRate", "lr")]:
        assert [s for s, _ in sc[tag]] == [1, 2]
        np.testing.assert_allclose([v for _, v in sc[tag]], h[key], rtol=1e-6)
