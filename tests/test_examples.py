"""Run every lecture example in quick mode and check the claim it demonstrates, from the values its
``main(quick=True)`` returns. Also keeps docs/api.md in sync with the docstrings."""

import importlib.util
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(autouse=True)
def _one_blas_thread():
    """Tiny problems: BLAS threads only contend with the other test workers (10x slower under load)."""
    from threadpoolctl import threadpool_limits

    with threadpool_limits(1):
        yield


def run(name, **kwargs):
    path = ROOT / "examples" / name
    spec = importlib.util.spec_from_file_location(path.stem, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.main(quick=True, **kwargs)


def test_01_softmax_table_matches_the_slide_and_models_learn():
    r = run("01_logistic_softmax.py")
    assert np.allclose(r["slide_probs"], (0.036, 0.89, 0.07), atol=5e-3)   # the slide, to 2 decimals
    assert np.allclose(np.round(r["slide_probs"], 2), (0.04, 0.89, 0.07))
    assert r["logreg_test_acc"] > 0.9 and r["softmax_test_acc"] > 0.9
    assert r["softmax_row_sum"] == pytest.approx(1.0, abs=1e-5)


def test_02_linear_on_raw_is_poor_features_fix_it(tmp_path):
    r = run("02_feature_engineering.py", out=str(tmp_path))
    acc = r["acc"]
    assert acc["linear on raw x"] < 0.7
    assert acc["linear on poly phi(x)"] > 0.9 and acc["MLP (learned phi)"] > 0.9
    off_diagonal = r["sim_onehot"][~np.eye(6, dtype=bool)]
    assert np.allclose(off_diagonal, 0)                      # one-hot: every pair of words equally far
    assert r["sim_hand"][3, 4] > 0.5                         # hand-made: cat ~ cats
    assert Path(r["figure"]).stat().st_size > 0


def test_03_composition_of_linear_maps_is_linear():
    r = run("03_linear_composition.py")
    assert r["collapse_gap"] < 1e-4 and r["same_predictions"] == 1.0
    acc = r["acc"]
    assert acc["deep linear (3 layers, no g)"] < 0.7 and acc["linear model"] < 0.7
    for g in ("relu", "sigmoid", "tanh"):
        assert acc[f"deep, g = {g}"] > 0.9


def test_04_backprop_matches_the_hand_derivation():
    r = run("04_backprop.py")
    assert r["log_auto"] == pytest.approx(r["log_hand"]) == pytest.approx(0.6)
    for k in ("w1", "w2", "x"):
        assert r["auto"][k] == pytest.approx(r["hand"][k], abs=1e-12)
    assert r["backward"][0] == "L"
    nodes = r["graph"].nodes
    steps = {n.label: n.backward_step for n in nodes}
    for src, dst in ((nodes[i].label, nodes[j].label) for i, j in r["graph"].edges):
        assert r["forward"].index(src) < r["forward"].index(dst)
        assert steps[dst] < steps[src]                       # reverse topological: a node before its inputs
    assert "digraph" in r["dot"]


def test_05_regularization_shrinks_the_gap(tmp_path):
    r = run("05_overfitting.py", out=str(tmp_path))
    regularized = [r[k]["gap"] for k in ("early stopping", "L2", "dropout")]
    assert r["no regularization"]["gap"] > min(regularized)
    assert r["no regularization"]["train_acc"] > 0.95        # it does memorise
    assert Path(r["figure"]).stat().st_size > 0


def test_06_momentum_beats_sgd_newton_beats_gd(tmp_path):
    r = run("06_optimizers.py", out=str(tmp_path))
    s = r["ravine_steps"]
    assert s["momentum"] is not None and s["momentum"] < s["sgd"]
    assert s["nesterov"] is not None and s["nesterov"] < s["sgd"]
    newton, gd = r["steps"]["Newton"], r["steps"]["GD"]
    assert newton is not None and newton <= 10
    assert (gd if gd is not None else len(r["newton"]["GD"])) > 20 * newton   # not reached: more than the steps run
    c = r["batch_curves"]
    assert all(v[-1] < v[0] for v in c.values())             # every batch size descends


def test_07_estimate_reproduces_the_lecture_and_the_measurement():
    r = run("07_street_fighting_math.py")
    for row in r["rows"]:
        assert row["lecture"] == row["formulas"]
        assert row["meas_fwd_macs"] == row["est_fwd_macs"] == row["B"] * row["D"] * 2 * row["D"]
        assert row["meas_bwd_macs"] == row["est_bwd_macs"] == 2 * row["est_fwd_macs"]   # "2x for backward"
        assert row["meas_training_bytes"] == pytest.approx(row["est_training_bytes"], rel=0.1)


def test_08_project_analysis(tmp_path):
    r = run("08_project_analysis.py", out=str(tmp_path))
    assert len(r["weight_ranking"]) == 64
    assert r["ablation"]["centre 4x4"] > r["ablation"]["border"]    # the border pixels are mostly blank
    for v in r["curve"].values():
        assert v[-1] > v[0]                                  # more data helps
    assert r["phi"].shape == (3, 3) and np.allclose(np.diag(r["phi"]), 1)
    assert sum(r["partition"].values()) == r["n"]
    assert all(Path(p).exists() for p in r["figures"].values())


def test_api_md_is_in_sync_with_the_docstrings():
    sys.path.insert(0, str(ROOT / "docs"))
    try:
        import make_api
    finally:
        sys.path.pop(0)
    committed = (ROOT / "docs" / "api.md").read_text()
    assert make_api.render() == committed, "docs/api.md is stale: run `python docs/make_api.py`"
    # signatures are how chainrule is called, never the NumPy function behind a primitive's forward
    assert "where=True" not in committed and "casting=" not in committed


def _anchor(heading):
    """GitHub's anchor for a markdown heading."""
    import re

    return re.sub(r"[^a-z0-9 -]", "", heading.strip().lower()).replace(" ", "-")


def test_guide_links_figures_and_outputs_resolve():
    import re

    docs = ROOT / "docs"
    guide = (docs / "guide.md").read_text()
    glossary = (docs / "glossary.md").read_text()
    anchors = {_anchor(h) for h in re.findall(r"^### (.+)$", glossary, re.M)}
    missing = sorted(set(re.findall(r"glossary\.md#([a-z0-9-]+)", guide)) - anchors)
    assert not missing, f"guide.md links to glossary terms that do not exist: {missing}"
    for png in re.findall(r"\]\((figures/[^)]+\.png)\)", guide):
        size = (docs / png).stat().st_size
        assert 0 < size < 100_000, f"{png}: {size} bytes"
    for stem in (f"{k:02d}" for k in range(1, 9)):
        block = re.search(rf"<!-- output:{stem} -->\n(.*?)<!-- /output:{stem} -->", guide, re.S)
        assert block and block.group(1).strip(), f"guide.md: example {stem}'s output is missing (python docs/make_figures.py)"


def test_a_figure_writing_example_takes_out_and_says_where(tmp_path):
    """`python examples/02_*.py --out DIR` writes its figure into DIR and prints the path (default: the cwd)."""
    import os
    import subprocess

    env = {**os.environ, "PYTHONPATH": str(ROOT / "src"), "MPLBACKEND": "Agg"}
    script = str(ROOT / "examples" / "02_feature_engineering.py")
    run = subprocess.run([sys.executable, script, "--quick", "--out", str(tmp_path / "figs")], capture_output=True,
                         text=True, env=env, cwd=tmp_path, check=False)
    assert run.returncode != 0 and "figs" in run.stderr     # a missing directory is an error, not a silent temp dir
    (tmp_path / "figs").mkdir()
    out = subprocess.run([sys.executable, script, "--quick", "--out", str(tmp_path / "figs")], capture_output=True,
                         text=True, env=env, cwd=tmp_path, check=True).stdout
    figure = tmp_path / "figs" / "02_xor_features.png"
    assert f"figure: {figure}" in out and figure.stat().st_size > 0
