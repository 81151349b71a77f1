"""The fault suite, part 1: every file chainrule opens (model files, checkpoints, config.json, CSV).

Each case crafts its own bad file and holds the reader to the promise of docs/training.md ("What we
promise"): a ValueError naming the file in the API, one line and exit 2 in the CLI, no traceback, no
hang (FIFOs and devices run in a child with a timeout), bounded memory (an address-space limit in
the child), and nothing lost (the last good checkpoint survives). Runs, writes, data and
distributed faults are in test_faults_runs.py."""

import json
import os

import numpy as np
import pytest
from faults import CORRUPT, assert_one_line_error, cli, copy_run, craft, deep, python, trained_run

import chainrule as cr
from chainrule import io
from chainrule.checkpoint import latest_checkpoint, load_checkpoint, save_checkpoint
from chainrule.cli import main


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    return trained_run(tmp_path_factory.mktemp("faults"))


@pytest.fixture
def good(run):
    return (run / "model.safetensors").read_bytes()


def _main(argv, capsys):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def _one_line(code, err, *needles):
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert code == 2 and len(lines) == 1 and "Traceback" not in err, err
    for n in needles:
        assert n in lines[0], (n, lines[0])


# ----- one validated reader: the API -----------------------------------------------------------
@pytest.mark.parametrize("name", sorted(CORRUPT))
def test_every_reader_refuses_a_corrupt_file_with_a_value_error(tmp_path, good, name):
    make, says = CORRUPT[name]
    path = tmp_path / "bad.safetensors"
    path.write_bytes(make(good))
    for reader in (io.load, io.load_model, io.load_metadata, load_checkpoint):
        with pytest.raises(ValueError, match="bad.safetensors") as e:
            reader(path)
        assert says in str(e.value), (reader.__name__, str(e.value))


def test_a_million_zero_size_tensors_are_refused_fast_and_small(tmp_path):
    """The issue's 67 MB header of 1,000,000 tensors took 35 s and 2.5 GB; now the length check ends it."""
    path = tmp_path / "million.safetensors"
    entry = '"t{}": {{"dtype": "F32", "shape": [0], "data_offsets": [0, 0]}}'
    header = ("{" + ", ".join(entry.format(i) for i in range(1_000_000)) + "}").encode()
    path.write_bytes(craft(header))
    # VmHWM, not ru_maxrss: Linux carries ru_maxrss over exec from the (large) pytest worker that forked us
    p = python(f"import chainrule as cr\ntry:\n    cr.load({str(path)!r})\nexcept ValueError as e:\n    print(e)\n"
               "print(open('/proc/self/status').read().split('VmHWM:')[1].split()[0])", timeout=60)
    assert p.returncode == 0 and "(limit 16,777,216)" in p.stdout, p.stderr
    assert int(p.stdout.split()[-1]) < 400_000  # kB: the header is never parsed


def test_nested_json_is_a_value_error_not_a_recursion_error(tmp_path, run):
    m = cr.models.MLP([2, 3])
    path = tmp_path / "m.safetensors"
    cr.save(m.state_dict(), path, metadata={io.ARCH_KEY: deep(100_000)})
    with pytest.raises(ValueError, match="nested deeper than 64"):
        io.load_model(path)
    with pytest.raises(ValueError, match="nested deeper than 64"):
        io.parse_json('{"a": ' + deep(2000) + "}", "x")
    # and inside a checkpoint's state tree
    from safetensors.numpy import save
    ckpt = tmp_path / "epoch-0001.safetensors"
    ckpt.write_bytes(save({}, metadata={"format": "chainrule-checkpoint", "state": deep(100_000)}))
    with pytest.raises(ValueError, match="nested deeper than 64"):
        load_checkpoint(ckpt)


def test_model_file_and_checkpoint_are_not_confused(run):
    with pytest.raises(ValueError, match="is not a chainrule checkpoint"):
        load_checkpoint(run / "model.safetensors")
    with pytest.raises(ValueError, match="stores no chainrule architecture"):
        io.load_model(latest_checkpoint(run))


# ----- non-regular files: refused, without blocking or reading forever -------------------------
def _specials(tmp_path):
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    zero = tmp_path / "zero"
    os.symlink("/dev/zero", zero)
    folder = tmp_path / "folder"
    folder.mkdir()
    return {"a FIFO": fifo, "a device": zero, "a directory": folder}


def test_fifo_device_and_directory_are_refused_by_the_api_without_blocking(tmp_path):
    code = ("import chainrule as cr, sys\nfrom chainrule.checkpoint import load_checkpoint\n"
            "from chainrule.datasets import load_csv\n"
            "for f in (cr.load, cr.load_model, load_checkpoint, load_csv):\n"
            "    try:\n        f(sys.argv[1])\n    except (ValueError, FileNotFoundError) as e:\n        print(e)\n")
    for kind, path in _specials(tmp_path).items():
        p = python(code.replace("sys.argv[1]", repr(str(path))), timeout=60)
        assert p.returncode == 0 and "Traceback" not in p.stderr, p.stderr
        out = p.stdout.splitlines()
        assert len(out) == 4, p.stdout
        if kind != "a directory":  # load_checkpoint looks inside a directory for its newest checkpoint
            assert all(f"is {kind}" in line for line in out), p.stdout


@pytest.mark.parametrize("target", ["model.safetensors", "config.json"])
def test_cli_refuses_special_files_in_a_run_directory(tmp_path, run, target):
    for kind, special in _specials(tmp_path).items():
        d = copy_run(run, tmp_path / kind.replace(" ", "_"))
        dst = d / target
        dst.unlink()
        if kind == "a directory":
            dst.mkdir()
        else:
            os.symlink(special, dst)
        for cmd in (["evaluate", d], ["predict", d, "--data", f"csv:{tmp_path / 'x.csv'}"]):
            (tmp_path / "x.csv").write_text("a,b\n1,2\n")
            p = cli(*cmd, timeout=60)
            assert_one_line_error(p, f"is {kind}")


def test_cli_refuses_special_files_as_csv_and_checkpoint(tmp_path, run):
    for kind, special in _specials(tmp_path).items():
        assert_one_line_error(cli("train", "--data", f"csv:{special}", "--out", tmp_path / "o", timeout=60), f"is {kind}")
        assert_one_line_error(cli("predict", run, "--data", f"csv:{special}", timeout=60), f"is {kind}")
        d = copy_run(run, tmp_path / ("ck_" + kind.replace(" ", "_")))
        last = latest_checkpoint(d)
        os.remove(last)
        if kind == "a directory":
            os.mkdir(last)
        else:
            os.symlink(special, last)
        assert_one_line_error(cli("train", "--resume", d, "--epochs", "5", timeout=60), f"is {kind}")


def test_missing_files_are_one_line(tmp_path, run, capsys):
    _one_line(*_main(["evaluate", tmp_path / "nothing"], capsys)[::2], "not a chainrule run directory")
    _one_line(*_main(["predict", run, "--data", f"csv:{tmp_path / 'no.csv'}"], capsys)[::2], "no such CSV file")
    d = copy_run(run, tmp_path)
    os.remove(d / "model.safetensors")
    for f in os.listdir(d / "checkpoints"):
        os.remove(d / "checkpoints" / f)
    _one_line(*_main(["evaluate", d], capsys)[::2], "no checkpoint")


# ----- corrupt files through the CLI -----------------------------------------------------------
@pytest.mark.parametrize("name", ["truncated_half", "header_nested_deep", "bad_dtype", "pickle_from_torch_save",
                                  "too_many_tensors", "overlap", "length_2_63"])
def test_cli_corrupt_model_and_checkpoint_are_one_line(tmp_path, run, good, name, capsys):
    make, says = CORRUPT[name]
    d = copy_run(run, tmp_path)
    (d / "model.safetensors").write_bytes(make(good))
    _one_line(*_main(["evaluate", d], capsys)[::2], says, "model.safetensors")
    last = latest_checkpoint(d)
    with open(last, "wb") as f:
        f.write(make(good))
    _one_line(*_main(["train", "--resume", d, "--epochs", "5"], capsys)[::2], says, os.path.basename(last))


def _state(run):
    return load_checkpoint(latest_checkpoint(run))


SEMANTIC = {  # a checkpoint whose file is valid but whose content is not a trainer state
    "epoch_negative": (lambda s: s.update(epoch=-5), "epoch must be an integer >= 0, got -5"),
    "epoch_a_string": (lambda s: s.update(epoch="3"), "epoch must be an integer"),
    "epoch_vs_history": (lambda s: s.update(epoch=7), "epoch is 7 but the history holds 3 epochs"),
    "rng_garbage": (lambda s: s.update(rng="garbage"), "rng is not a PCG64 generator state"),
    "rng_wrong_generator": (lambda s: s.update(rng={"bit_generator": "MT19937", "state": {}}), "rng is not a PCG64"),
    "no_rng": (lambda s: s.pop("rng"), "lacks ['rng']"),
    "no_history": (lambda s: s.pop("history"), "lacks ['history']"),
    "history_garbage": (lambda s: s.update(history=[1, 2]), "history must be"),
    "model_not_arrays": (lambda s: s.update(model={"layers.0.weight": "x"}), "model must map parameter names to arrays"),
    "model_wrong_shape": (lambda s: s["model"].update({"layers.0.weight": np.zeros((2, 2), np.float32)}),
                          "does not fit this run"),
    "optimizer_garbage": (lambda s: s.update(optimizer={"state": 5}), "does not fit this run"),
    "loader_garbage": (lambda s: s.update(loader={"epoch": "x"}), "loader must hold"),
    "callbacks_garbage": (lambda s: s.update(callbacks=[["EarlyStopping"]]), "callbacks must be"),
    "state_a_list": (lambda s: (s.clear(), s.update(__list__=True)), "lacks"),
}


@pytest.mark.parametrize("name", sorted(SEMANTIC))
def test_semantically_bad_checkpoints_are_refused_before_anything_is_applied(tmp_path, run, name, capsys):
    change, says = SEMANTIC[name]
    d = copy_run(run, tmp_path)
    last = latest_checkpoint(d)
    state = _state(d)
    change(state)
    save_checkpoint(state, last)
    config = (d / "config.json").read_bytes()
    _one_line(*_main(["train", "--resume", d, "--epochs", "6"], capsys)[::2], says, os.path.basename(last))
    assert (d / "config.json").read_bytes() == config  # nothing changed


def test_a_state_that_refers_to_a_missing_tensor(tmp_path):
    from safetensors.numpy import save
    path = tmp_path / "epoch-0001.safetensors"
    path.write_bytes(save({}, metadata={"format": "chainrule-checkpoint", "state": json.dumps({"__array__": "nope"})}))
    with pytest.raises(ValueError, match="refers to a tensor 'nope' that the file does not hold"):
        load_checkpoint(path)


# ----- config.json -----------------------------------------------------------------------------
def _config(run):
    return json.loads((run / "config.json").read_text())


CONFIGS = {
    "a_list": (lambda c: [1, 2], "must be a JSON object of settings, got a list"),
    "huge_hidden": (lambda c: c | {"hidden": [30_000_000]}, "more than the limit of 200,000,000"),
    "missing_key": (lambda c: {k: v for k, v in c.items() if k != "scaler"}, "the key 'scaler' is missing"),
    "lr_a_string": (lambda c: c | {"lr": "fast"}, "lr must be a number >= 0, got 'fast'"),
    "hidden_strings": (lambda c: c | {"hidden": ["8"]}, "hidden must be a list of positive integers"),
    "bad_model": (lambda c: c | {"model": "resnet"}, "model must be logreg, softmax, mlp, cnn, gru"),
    "short_scaler": (lambda c: c | {"scaler": {"mean": [0], "scale": [1]}}, "scaler.mean must be 4 finite numbers"),
    "zero_scale": (lambda c: c | {"scaler": {"mean": [0] * 4, "scale": [0] * 4}}, "scaler.scale must be positive"),
    "fingerprint_garbage": (lambda c: c | {"data_sha256": 5}, "data_sha256 must be 64 hex digits"),
}


@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_bad_config_json_is_one_line_for_every_command(tmp_path, run, name, capsys):
    change, says = CONFIGS[name]
    d = copy_run(run, tmp_path)
    (d / "config.json").write_text(json.dumps(change(_config(d))))
    (tmp_path / "x.csv").write_text("a,b\n1,2\n")
    for argv in (["evaluate", d], ["predict", d, "--data", f"csv:{tmp_path / 'x.csv'}"], ["train", "--resume", d]):
        _one_line(*_main(argv, capsys)[::2], says, "config.json")


@pytest.mark.parametrize("text, says", [("", "is not JSON"), ('{"scaler": Infinity}', "non-standard constant Infinity"),
                                        (deep(10_000), "nested deeper"), ("{\"a\": 1", "is not JSON")])
def test_unparseable_config_json(tmp_path, run, text, says, capsys):
    d = copy_run(run, tmp_path)
    (d / "config.json").write_text(text)
    _one_line(*_main(["evaluate", d], capsys)[::2], says)


def test_memory_stays_bounded_when_a_config_asks_for_a_huge_model(tmp_path, run):
    d = copy_run(run, tmp_path)
    os.remove(d / "model.safetensors")  # so evaluate would build the model from config.json
    (d / "config.json").write_text(json.dumps(_config(d) | {"hidden": [30_000_000]}))
    p = cli("evaluate", d, timeout=60)  # the child's address space is capped (faults.MEMORY)
    assert_one_line_error(p, "parameters, more than the limit")


def test_a_model_file_from_another_run_is_refused(tmp_path, run, capsys):
    """A model.safetensors copied in from a run of another architecture was evaluated silently."""
    d = copy_run(run, tmp_path)
    cr.save(cr.models.MLP([4, 16, 4, 3]), d / "model.safetensors")
    (tmp_path / "x.csv").write_text("a,b\n1,2\n")
    for argv in (["evaluate", d], ["predict", d, "--data", f"csv:{tmp_path / 'x.csv'}"]):
        _one_line(*_main(argv, capsys)[::2], "holds MLP [4, 16, 4, 3]", "config.json describes MLP [4, 8, 3]",
                  "from another run")


def test_a_truncated_torch_save_file_is_named_as_one(tmp_path, torch):
    """cr.load reads torch.save's zip files; a cut-off one used to be told "chainrule never unpickles"."""
    path = tmp_path / "w.pt"
    torch.save({"w": torch.ones(1000)}, path)
    np.testing.assert_array_equal(cr.load(path)["w"].numpy(), np.ones(1000, np.float32))
    path.write_bytes(path.read_bytes()[:-200])
    with pytest.raises(ValueError, match="w.pt") as e:
        cr.load(path)
    assert "a zip file, e.g. from torch.save: only cr.load reads those" in str(e.value)
