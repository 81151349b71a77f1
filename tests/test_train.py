"""The fit loop: learning, GD/SGD batching, callbacks, early stopping, checkpoints and exact resume."""

import json
import os

import numpy as np
import pytest

import chainrule as cr
from chainrule import datasets, models, optim
from chainrule.checkpoint import _decode, _encode
from chainrule.train import (
    Callback,
    Checkpoint,
    EarlyStopping,
    History,
    LRSchedulerCallback,
    Trainer,
    evaluate,
    fit,
    latest_checkpoint,
    load_checkpoint,
    save_checkpoint,
)


def _iris():
    Xtr, Xte, ytr, yte = datasets.load_iris()
    mu, sd = Xtr.mean(0), Xtr.std(0)
    return (Xtr - mu) / sd, (Xte - mu) / sd, ytr, yte


def _weights(model):
    return {k: np.array(v._data) for k, v in model.state_dict().items()}


class Count(Callback):
    def __init__(self):
        self.batches, self.begun, self.ended = 0, 0, 0

    def on_train_begin(self, logs=None): self.begun += 1
    def on_train_end(self, logs=None): self.ended += 1
    def on_batch_end(self, batch, logs): self.batches += 1


def test_fit_learns_iris_and_fills_the_history():
    Xtr, Xte, ytr, yte = _iris()
    cr.manual_seed(0)
    model = models.MLP([4, 16, 3])
    h = fit(model, "cross_entropy", optim.Adam(model.parameters(), lr=0.05), (Xtr, ytr), (Xte, yte),
            epochs=15, batch_size=16, seed=0, progress=False)
    assert isinstance(h, History) and len(h) == 15
    assert {"epoch", "loss", "accuracy", "val_loss", "val_accuracy", "lr", "time"} <= set(h.keys())
    assert h["loss"][-1] < 0.5 * h["loss"][0]
    assert h["val_accuracy"][-1] >= 0.9
    assert h["lr"] == [0.05] * 15
    res = evaluate(model, "cross_entropy", (Xte, yte))
    assert res["accuracy"] == pytest.approx(h["val_accuracy"][-1]) and res["loss"] == pytest.approx(h["val_loss"][-1])


@pytest.mark.parametrize("batch_size, steps_per_epoch", [(None, 1), (1, 120), (32, 4)])
def test_batch_size_none_is_gd_and_one_is_sgd(batch_size, steps_per_epoch):
    Xtr, _, ytr, _ = _iris()
    model = models.SoftmaxRegression(4, 3)
    count = Count()
    fit(model, "cross_entropy", optim.SGD(model.parameters(), lr=0.1), (Xtr, ytr), epochs=2,
        batch_size=batch_size, callbacks=[count], progress=False)
    assert count.batches == 2 * steps_per_epoch and count.begun == count.ended == 1


def test_same_seed_gives_bit_identical_weights():
    Xtr, _, ytr, _ = _iris()

    def run():
        cr.manual_seed(3)
        model = models.MLP([4, 16, 3], dropout=0.2)
        fit(model, "cross_entropy", optim.Adam(model.parameters(), lr=0.01), (Xtr, ytr), epochs=3, batch_size=8,
            seed=3, progress=False)
        return _weights(model)

    a, b = run(), run()
    assert all(np.array_equal(a[k], b[k]) for k in a)


def test_evaluate_uses_eval_mode_and_no_grad_and_restores_train_mode():
    Xtr, _, ytr, _ = _iris()
    cr.manual_seed(0)
    model = models.MLP([4, 8, 3], dropout=0.5)
    r1, r2 = evaluate(model, "cross_entropy", (Xtr, ytr)), evaluate(model, "cross_entropy", (Xtr, ytr))
    assert r1 == r2  # dropout off: deterministic
    assert model.training
    assert all(p.grad is None for p in model.parameters())


class Script(Callback):
    """Overwrites val_loss with a scripted sequence and records the weights after each epoch."""

    def __init__(self, values):
        self.values, self.snapshots = values, {}

    def on_epoch_end(self, epoch, logs):
        logs["val_loss"] = self.values[epoch - 1]
        self.snapshots[epoch] = _weights(self.trainer.model)


def test_early_stopping_stops_after_patience_and_restores_the_best_weights():
    Xtr, Xte, ytr, yte = _iris()
    model = models.SoftmaxRegression(4, 3)
    script = Script([3.0, 2.0, 2.5, 2.1, 2.6, 1.0, 0.5])
    stop = EarlyStopping(monitor="val_loss", patience=3, min_delta=0.0)
    h = fit(model, "cross_entropy", optim.SGD(model.parameters(), lr=0.1), (Xtr, ytr), (Xte, yte), epochs=7,
            callbacks=[script, stop], progress=False)
    assert len(h) == 5 and stop.best_epoch == 2 and stop.stopped_epoch == 5
    w = _weights(model)
    assert all(np.array_equal(w[k], script.snapshots[2][k]) for k in w)
    assert not all(np.array_equal(w[k], script.snapshots[5][k]) for k in w)


def test_early_stopping_min_delta_and_missing_monitor():
    Xtr, _, ytr, _ = _iris()
    model = models.SoftmaxRegression(4, 3)
    script = Script([1.0, 0.95, 0.9, 0.85])
    stop = EarlyStopping(patience=2, min_delta=0.1)  # improvements of 0.05 do not count
    h = fit(model, "cross_entropy", optim.SGD(model.parameters(), lr=0.1), (Xtr, ytr), epochs=4,
            callbacks=[script, stop], progress=False)
    assert len(h) == 3
    with pytest.raises(ValueError, match="no 'val_loss' in the epoch logs"):
        fit(model, "cross_entropy", optim.SGD(model.parameters(), lr=0.1), (Xtr, ytr), epochs=1,
            callbacks=[EarlyStopping()], progress=False)


def test_callback_can_stop_by_returning_true():
    class StopAt2(Callback):
        def on_epoch_end(self, epoch, logs):
            return epoch == 2

    Xtr, _, ytr, _ = _iris()
    model = models.SoftmaxRegression(4, 3)
    h = fit(model, "cross_entropy", optim.SGD(model.parameters(), lr=0.1), (Xtr, ytr), epochs=9,
            callbacks=[StopAt2()], progress=False)
    assert len(h) == 2


def test_checkpoint_tree_round_trip_keeps_types():
    state = {"state": {0: {"step": np.float32(3), "exp_avg": np.arange(4.0, dtype=np.float32)}},
             "param_groups": [{"lr": 0.1, "betas": (0.9, 0.999), "params": [0], "nesterov": False, "x": None}],
             "rng": {"state": {"state": 2**100 + 7}}, "best": float("inf")}
    arrays = {}
    tree = json.loads(json.dumps(_encode(state, "state", arrays)))
    back = _decode(tree, arrays)
    assert list(back["state"]) == [0] and back["param_groups"][0]["betas"] == (0.9, 0.999)
    assert isinstance(back["state"][0]["step"], np.float32) and back["state"][0]["step"] == 3
    np.testing.assert_array_equal(back["state"][0]["exp_avg"], np.arange(4.0))
    assert back["rng"]["state"]["state"] == 2**100 + 7 and back["best"] == float("inf")
    with pytest.raises(TypeError, match="cannot store object at 'state.bad'"):
        _encode({"bad": object()}, "state", {})


def test_checkpoint_is_safetensors_not_pickle_and_atomic(tmp_path, monkeypatch):
    path = tmp_path / "epoch-0001.safetensors"
    save_checkpoint({"w": np.ones(3, np.float32), "epoch": 1}, path)
    from safetensors.numpy import load_file
    assert list(load_file(path)) == ["state.w"]  # a plain safetensors file: no pickle anywhere
    assert load_checkpoint(tmp_path)["epoch"] == 1

    import errno

    import chainrule.io as crio

    def crash(fd):  # the data is in the temporary file, the disk fills before it is durable
        raise OSError(errno.ENOSPC, "disk full")

    monkeypatch.setattr(crio.os, "fsync", crash)
    with pytest.raises(OSError, match="disk full"):
        save_checkpoint({"w": np.zeros(3, np.float32), "epoch": 2}, path)
    monkeypatch.undo()
    back = load_checkpoint(path)  # the previous checkpoint is intact
    assert back["epoch"] == 1 and np.array_equal(back["w"], np.ones(3))
    assert os.listdir(tmp_path) == ["epoch-0001.safetensors"]  # no temporary file left behind


def test_checkpoint_callback_every_and_keep(tmp_path):
    Xtr, _, ytr, _ = _iris()
    model = models.SoftmaxRegression(4, 3)
    fit(model, "cross_entropy", optim.SGD(model.parameters(), lr=0.1), (Xtr, ytr), epochs=5,
        callbacks=[Checkpoint(tmp_path, every=2, keep=None)], progress=False)
    assert sorted(os.listdir(tmp_path)) == ["epoch-0002.safetensors", "epoch-0004.safetensors", "epoch-0005.safetensors"]
    assert latest_checkpoint(tmp_path).endswith("epoch-0005.safetensors")
    with pytest.raises(FileNotFoundError, match="no checkpoint"):
        latest_checkpoint(tmp_path / "empty")


class Interrupt(Callback):
    def __init__(self, after):
        self.after = after

    def on_epoch_end(self, epoch, logs):
        if epoch == self.after:
            raise KeyboardInterrupt


def _resumable_run(ckpt, epochs=6, interrupt=None, resume=None):
    """MLP with dropout, shuffled minibatches, Adam, a StepLR schedule and early stopping."""
    from chainrule.optim.lr_scheduler import StepLR
    Xtr, Xte, ytr, yte = _iris()
    cr.manual_seed(11)
    model = models.MLP([4, 16, 16, 3], dropout=0.3)
    opt = optim.Adam(model.parameters(), lr=0.02)
    sched = StepLR(opt, step_size=2, gamma=0.5)
    callbacks = [EarlyStopping(patience=100)] + ([Interrupt(interrupt)] if interrupt else [])
    h = fit(model, "cross_entropy", opt, (Xtr, ytr), (Xte, yte), epochs=epochs, batch_size=16, scheduler=sched,
            callbacks=callbacks, checkpoint_dir=ckpt, resume=resume, progress=False, seed=5)
    return model, h


def test_resume_after_interrupt_gives_exactly_the_uninterrupted_weights(tmp_path):
    full, h_full = _resumable_run(tmp_path / "a")
    with pytest.raises(KeyboardInterrupt):
        _resumable_run(tmp_path / "b", interrupt=3)
    assert latest_checkpoint(tmp_path / "b").endswith("epoch-0002.safetensors")  # killed before epoch 3's checkpoint
    resumed, h_res = _resumable_run(tmp_path / "b", resume=tmp_path / "b")
    w_full, w_res = _weights(full), _weights(resumed)
    assert all(np.array_equal(w_full[k], w_res[k]) for k in w_full)
    assert h_res["loss"] == h_full["loss"] and h_res["lr"] == h_full["lr"] == [0.02, 0.02, 0.01, 0.01, 0.005, 0.005]
    assert h_res["val_loss"] == h_full["val_loss"]


def test_trainer_continues_epoch_by_epoch_like_one_long_run():
    Xtr, _, ytr, _ = _iris()

    def make():
        cr.manual_seed(2)
        model = models.MLP([4, 8, 3])
        return model, Trainer(model, "cross_entropy", optim.Adam(model.parameters(), lr=0.01), progress=False)

    m1, t1 = make()
    t1.fit((Xtr, ytr), epochs=3, batch_size=16, seed=1)
    m2, t2 = make()
    from chainrule.data import DataLoader
    loader = DataLoader(Xtr, ytr, batch_size=16, seed=1)
    cr.manual_seed(1)
    for _ in range(3):
        t2.fit(loader, epochs=t2.epoch + 1)
    assert t2.epoch == 3 and len(t2.history) == 3
    w1, w2 = _weights(m1), _weights(m2)
    assert all(np.array_equal(w1[k], w2[k]) for k in w1)


def test_history_plot_writes_a_png(tmp_path):
    h = History([{"epoch": 1, "loss": 1.0, "val_loss": 1.2, "accuracy": 0.5, "lr": 0.1, "time": 0.1},
                 {"epoch": 2, "loss": 0.5, "val_loss": 0.9, "accuracy": 0.7, "lr": 0.1, "time": 0.1}])
    out = h.plot(tmp_path / "curves.png")
    assert open(out, "rb").read(8) == b"\x89PNG\r\n\x1a\n"
    assert h["val_loss"] == [1.2, 0.9]
    with pytest.raises(KeyError, match="no 'val_accuracy' in the history"):
        h["val_accuracy"]


def test_plot_runs_draws_one_panel_per_run_with_train_and_validation(tmp_path, monkeypatch):
    import chainrule.history as history

    panels = []
    real_save = history.save

    def spy(fig, path, dpi=100):
        panels.extend((ax.get_title(), [list(line.get_ydata()) for line in ax.lines]) for ax in fig.axes)
        return real_save(fig, path, dpi)

    monkeypatch.setattr(history, "save", spy)
    a = History([{"epoch": 1, "loss": 1.0, "val_loss": 1.2}, {"epoch": 2, "loss": 0.5, "val_loss": 0.9}])
    b = History([{"epoch": 1, "loss": 2.0}])
    out = history.plot_runs({"a": a, "b": b}, tmp_path / "runs.png")
    assert open(out, "rb").read(8) == b"\x89PNG\r\n\x1a\n"
    assert panels == [("a", [[1.0, 0.5], [1.2, 0.9]]), ("b", [[2.0]])]   # no val_loss in b: train only
    with pytest.raises(KeyError, match="run 'b' has no 'accuracy'"):
        history.plot_runs({"b": b}, tmp_path / "x.png", key="accuracy")
    with pytest.raises(ValueError, match="no runs"):
        history.plot_runs({}, tmp_path / "x.png")


@pytest.mark.filterwarnings("ignore::RuntimeWarning")  # the overflow is the point of the last case
def test_bad_arguments_are_clear_errors():
    Xtr, _, ytr, _ = _iris()
    model = models.SoftmaxRegression(4, 3)
    opt = optim.SGD(model.parameters(), lr=0.1)
    with pytest.raises(ValueError, match="unknown metric 'f1'"):
        fit(model, "cross_entropy", opt, (Xtr, ytr), metrics=["f1"])
    with pytest.raises(ValueError, match="must be an \\(X, y\\) tuple or a DataLoader"):
        fit(model, "cross_entropy", opt, Xtr)
    with pytest.raises(ValueError, match="different lengths"):
        fit(model, "cross_entropy", opt, (Xtr, ytr[:5]))
    with pytest.raises(FloatingPointError, match="lower the learning rate"):
        fit(model, "cross_entropy", optim.SGD(model.parameters(), lr=1e30), (Xtr * 1e20, ytr), epochs=3, progress=False)


def test_newton_trains_through_fit_with_a_closure():
    """Newton gets step(closure); on the convex full-batch softmax-regression loss a few Newton steps
    reach a loss that 50 epochs of gradient descent at a good step size do not."""
    Xtr, _, ytr, _ = _iris()
    cr.manual_seed(0)
    newton_model = models.SoftmaxRegression(4, 3)
    opt = optim.Newton(newton_model.parameters(), damping=1e-3)
    h_newton = fit(newton_model, "cross_entropy", opt, (Xtr, ytr), epochs=5, batch_size=None, progress=False,
                   penalty=lambda: cr.nn.l2_penalty(newton_model, 1e-2))
    cr.manual_seed(0)
    gd_model = models.SoftmaxRegression(4, 3)
    h_gd = fit(gd_model, "cross_entropy", optim.SGD(gd_model.parameters(), lr=0.5), (Xtr, ytr), epochs=50,
               batch_size=None, progress=False, penalty=lambda: cr.nn.l2_penalty(gd_model, 1e-2))
    assert h_newton["loss"][-1] < h_gd["loss"][-1] and h_newton["accuracy"][-1] > 0.9


def test_reduce_lr_on_plateau_gets_the_monitored_value():
    from chainrule.optim.lr_scheduler import ReduceLROnPlateau
    Xtr, Xte, ytr, yte = _iris()
    model = models.SoftmaxRegression(4, 3)
    opt = optim.SGD(model.parameters(), lr=0.1)
    # val_loss is scripted flat, so the plateau scheduler must cut the lr after patience=1 bad epoch
    sched = ReduceLROnPlateau(opt, factor=0.5, patience=1)
    h = fit(model, "cross_entropy", opt, (Xtr, ytr), (Xte, yte), epochs=4,
            callbacks=[Script([1.0, 1.0, 1.0, 1.0]), LRSchedulerCallback(sched)], progress=False)
    assert h["lr"] == [0.1, 0.1, 0.1, 0.05]

    class Spy(ReduceLROnPlateau):
        seen = []

        def step(self, metrics):
            self.seen.append(metrics)
            return super().step(metrics)

    opt = optim.SGD(model.parameters(), lr=0.1)
    h = fit(model, "cross_entropy", opt, (Xtr, ytr), (Xte, yte), epochs=2, scheduler=Spy(opt), progress=False)
    assert Spy.seen == h["val_loss"]  # fit(scheduler=...) steps ReduceLROnPlateau on val_loss


def test_progress_bar_only_on_a_terminal(capsys, monkeypatch):
    Xtr, _, ytr, _ = _iris()
    model = models.SoftmaxRegression(4, 3)
    fit(model, "cross_entropy", optim.SGD(model.parameters(), lr=0.1), (Xtr, ytr), epochs=1, progress=True)
    assert capsys.readouterr().err == ""  # not a terminal under pytest: no bar
    import sys
    monkeypatch.setattr(sys.stderr, "isatty", lambda: True, raising=False)
    fit(model, "cross_entropy", optim.SGD(model.parameters(), lr=0.1), (Xtr, ytr), epochs=1, progress=True)
    assert "epoch 1/1" in capsys.readouterr().err
