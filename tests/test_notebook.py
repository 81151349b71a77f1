"""docs/notebooks/lecture.ipynb runs top to bottom in a real Jupyter kernel (nbclient, ipykernel's python3)
and its tagged cells print what the lecture says; the rich displays (HTML cost reports and analysis
tables, SVG graphs or their text fallback) are checked here too."""

import base64
import os
import re
from pathlib import Path

import numpy as np
import pytest

import chainrule as cr

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOK = ROOT / "docs" / "notebooks" / "lecture.ipynb"


def _kernel_name(tmp_path_factory) -> str:
    """ipykernel's python3 kernelspec, installed into a temporary Jupyter path when this machine has none."""
    from jupyter_client.kernelspec import KernelSpecManager, NoSuchKernel

    try:
        KernelSpecManager().get_kernel_spec("python3")
    except NoSuchKernel:
        from ipykernel.kernelspec import install

        prefix = tmp_path_factory.mktemp("jupyter")
        install(prefix=str(prefix))
        os.environ["JUPYTER_PATH"] = os.pathsep.join([str(prefix / "share" / "jupyter"), os.environ.get("JUPYTER_PATH", "")])
    return "python3"


@pytest.fixture(scope="module")
def executed(tmp_path_factory):
    import nbclient  # the `test` extra: a missing one fails, as the notebook must run in CI
    import nbformat

    kernel = _kernel_name(tmp_path_factory)
    nb = nbformat.read(NOTEBOOK, as_version=4)
    old = os.environ.get("PYTHONPATH")
    os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT / "src"), old]))  # the kernel imports this tree
    os.environ.setdefault("MPLBACKEND", "Agg")
    try:
        nbclient.NotebookClient(nb, timeout=600, kernel_name=kernel, resources={"metadata": {"path": str(NOTEBOOK.parent)}}
                                ).execute()
    finally:
        if old is None:
            os.environ.pop("PYTHONPATH")
        else:
            os.environ["PYTHONPATH"] = old
    return {tag: cell for cell in nb.cells for tag in cell.metadata.get("tags", [])}


def _stdout(cell) -> str:
    return "".join(o.get("text", "") for o in cell.outputs if o.output_type == "stream" and o.name == "stdout")


def _data(cell) -> dict:
    (result,) = [o for o in cell.outputs if o.output_type == "execute_result"]
    return result["data"]


def test_notebook_backprop_matches_the_hand_derivation(executed):
    out = _stdout(executed["grad"])
    assert "tensor([1. , 0.8])" in out                                   # 2x / (x^2 + 1) at 1 and 2
    assert "{'w2': 1.5, 'w1': 0.375, 'x': 0.5}" in _stdout(executed["graph"])
    data = _data(executed["graph"])
    assert "image/svg+xml" in data or "no picture" in data["text/html"]   # a picture with dot, else the listing


def test_notebook_models_learn(executed):
    accs = [float(a) for a in re.findall(r"test accuracy (\d\.\d+)", _stdout(executed["regression"]))]
    assert len(accs) == 2 and min(accs) > 0.9
    assert "sums to 1.0" in _stdout(executed["regression"])
    best = float(re.search(r"best validation accuracy (\d\.\d+)", _stdout(executed["mlp"])).group(1))
    assert best > 0.93


def test_notebook_shows_the_summary_as_a_table_and_the_history_as_a_plot(executed):
    data = _data(executed["summary"])
    assert "<caption>MLP summary</caption>" in data["text/html"] and "<td>8,320</td>" in data["text/html"]  # 64*128 + 128
    assert data["text/plain"].startswith("layer")                          # the table, not a quoted string
    png = _data(executed["history"])["image/png"]                          # base64 in the notebook
    assert base64.b64decode(png).startswith(b"\x89PNG")


def test_notebook_fit_draws_tqdms_notebook_bar(executed):
    cell = executed["bar"]
    widgets = [o for o in cell.outputs if o.output_type == "display_data" and
               "application/vnd.jupyter.widget-view+json" in o.get("data", {})]
    assert len(widgets) == 2                                               # one bar per epoch, as ipywidgets
    assert "epoch 2/2" in widgets[-1]["data"]["text/plain"]
    assert re.search(r"two more epochs: loss \d\.\d{4}", _stdout(cell))


def test_notebook_race_cost_and_analysis(executed):
    steps = eval(_stdout(executed["race"]).strip().splitlines()[-1], {})  # noqa: S307 - a dict our cell printed
    assert steps["momentum"] < steps["sgd"] and steps["nesterov"] < steps["sgd"]
    assert "parameters: 9,610" in _stdout(executed["cost"])             # 64*128 + 128 + 128*10 + 10
    assert "<table>" in _data(executed["cost"])["text/html"]
    assert "of 64" in _stdout(executed["analysis"]) and "<td>px" in _data(executed["analysis"])["text/html"]


# --- the rich displays themselves --------------------------------------------------------------------

def test_cost_report_html_has_the_text_tables_cells():
    model = cr.models.MLP([8, 16, 3])
    rep = cr.cost.report(model, batch_size=4, optimizer="adam", verbose=False)
    html = rep._repr_html_()
    assert html.startswith("<table><caption>chainrule cost: 8 -&gt; 16 -&gt; 3")   # escaped
    rows = re.findall(r"<tr>(.*?)</tr>", html)
    text_rows = [line for line in rep.text.splitlines() if line.startswith(("parameters", "memory", "compute"))]
    assert len(rows) == 1 + len(text_rows)                                # header + one row per quantity
    assert "<td>195</td>" in html and "195" in rep.text                    # 8*16 + 16 + 16*3 + 3 parameters
    assert "<pre>" in html and "street-fighting math" in html             # the lecture's formulas under it


def _graph():
    x = cr.tensor(3.0, dtype=cr.float64, requires_grad=True)
    return cr.viz.graph(cr.log(x ** 2 + 1), grads=True)


def test_graph_without_dot_shows_its_listing(monkeypatch):
    monkeypatch.setattr("shutil.which", lambda name, *a, **k: None)
    g = _graph()
    assert g._repr_svg_() is None
    html = g._repr_html_()
    assert html.startswith("<pre>") and "log" in html and "apt-get install graphviz" in html
    assert "0.6" in html                                                 # dL/dx = 2x / (x^2 + 1) at 3


@pytest.mark.skipif(not cr.viz.dot_available(), reason="Graphviz's dot is not installed")
def test_graph_with_dot_is_an_svg():
    g = _graph()
    svg = g._repr_svg_()
    assert "<svg" in svg and "log" in svg
    assert g._repr_html_() is None                                       # the picture, not the listing


def test_analysis_result_html_is_its_records():
    from chainrule.analysis.importance import ImportanceResult

    r = ImportanceResult("weights", ["a<b", "c"], np.array([[0.25], [0.75]]))
    html = r._repr_html_()
    assert "a&lt;b" in html and "<caption>ImportanceResult</caption>" in html
    assert len(re.findall(r"<tr>", html)) == 1 + len(r.records())
    first = r.records()[0]
    assert all(f"<th>{k}</th>" in html for k in first)


def test_summary_is_its_text_and_an_html_table():
    model = cr.models.MLP([4, 8, 3])
    s = model.summary()
    assert isinstance(s, str) and repr(s) == str(s) and s.splitlines()[-1] == "67 parameters (67 trainable)"
    html = s._repr_html_()
    rows = re.findall(r"<tr>(.*?)</tr>", html)
    assert len(rows) == 1 + 3                                              # header + Linear, ReLU, Linear
    assert "<td>layers.0</td><td>Linear</td><td>8x4, 8</td><td>40</td>" in rows[1]
    assert html.endswith("<pre>67 parameters (67 trainable)</pre>")
    costs = cr.models.CNN1d().summary()._repr_html_()                     # the cost columns too
    assert "<th>fwd FLOPs</th>" in costs and "<td>Conv1d</td>" in costs


def test_history_displays_as_its_plot():
    h = cr.History([{"epoch": e, "loss": 1.0 / e, "val_loss": 1.5 / e, "accuracy": 0.5 + e / 10} for e in (1, 2, 3)])
    png = h._repr_png_()
    assert png.startswith(b"\x89PNG")
    from io import BytesIO

    import matplotlib.image as mpimg
    img = mpimg.imread(BytesIO(png))
    assert img.shape[1] > img.shape[0] > 100                               # two panels side by side: loss, accuracy
    assert cr.History()._repr_png_() is None                               # nothing to draw: the text repr
