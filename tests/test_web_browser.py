"""The playground in a real browser: Playwright (PyPI) driving Debian's chromium (installed by the
``chromium_path`` fixture), against a server on 127.0.0.1 that the ``playground_server`` fixture
starts in this process. Waits for conditions with generous timeouts; asserts no timings.
Screenshots of each view go to tests/artifacts/ (ignored by git)."""

import json
import re
import time
import urllib.request
from pathlib import Path

import numpy as np
import pytest

import chainrule as cr
from chainrule import datasets
from chainrule import playground as pg

ARTIFACTS = Path(__file__).parent / "artifacts"
TIMEOUT = 60_000  # ms: a loaded 2-core machine


@pytest.fixture(scope="module")
def browser(chromium_path):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=chromium_path, args=["--no-sandbox", "--disable-gpu"])
        yield b
        b.close()


@pytest.fixture
def page(browser, playground_server):
    """A fresh tab on the playground, loaded (first frame drawn), collecting console errors."""
    url, _ = playground_server
    ctx = browser.new_context(viewport={"width": 1400, "height": 900})
    pg_ = ctx.new_page()
    pg_.set_default_timeout(TIMEOUT)
    pg_.errors = []
    pg_.on("console", lambda m: pg_.errors.append(m.text) if m.type == "error" else None)
    pg_.on("pageerror", lambda e: pg_.errors.append(str(e)))
    pg_.goto(url + "/")
    pg_.wait_for_selector("body[data-ready='1']")
    yield pg_
    ctx.close()


def state(page, playground_server) -> dict:
    """GET /api/state for this tab's session."""
    sid = page.evaluate("() => CR.session")
    with urllib.request.urlopen(f"{playground_server[0]}/api/state?session={sid}", timeout=30) as r:
        return json.load(r)


def session_of(page, playground_server):
    return playground_server[1].state.hub.sessions[page.evaluate("() => CR.session")]


def wait_state(page, server, cond, timeout=90.0):
    deadline = time.monotonic() + timeout
    while True:
        s = state(page, server)
        if cond(s):
            return s
        assert time.monotonic() < deadline, f"condition not reached; last state {s}"
        time.sleep(0.2)


def shot(page, name):
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)


def configure_and_wait(page, server, testid, value, key, expect=None):
    page.select_option(f"[data-testid={testid}]", value)
    return wait_state(page, server, lambda s: s["config"][key] == (value if expect is None else expect))


def play_until(page, server, steps):
    page.click("[data-testid=play]")
    wait_state(page, server, lambda s: s["step"] >= steps)
    page.click("[data-testid=play]")
    s = wait_state(page, server, lambda s: not s["playing"])
    page.wait_for_function("n => document.getElementById('step').textContent === String(n)", arg=s["step"])
    return s


# ----- the tests ----------------------------------------------------------------------------------
def test_page_loads_with_every_hook_and_no_console_errors(page, playground_server):
    for tid in ("play", "step-once", "reset", "dataset", "optimizer", "learning-rate", "step", "train-loss",
                "test-loss", "boundary"):
        assert page.locator(f"[data-testid={tid}]").count() == 1, tid
    s = state(page, playground_server)
    assert s["step"] == 0 and page.text_content("[data-testid=step]") == "0"
    assert page.text_content("[data-testid=train-loss]") == f"{s['train_loss']:.4f}"
    page.hover("[data-testid=test-loss]")  # a formula one hover away, rendered by KaTeX
    page.wait_for_selector("#tip:not([hidden]) .katex")
    box = page.locator("[data-testid=network]").bounding_box()
    node = page.evaluate("() => CR.layout.nodes.find(n => n.id === 'h:0:1')")
    page.mouse.move(box["x"] + node["x"] + 15, box["y"] + node["y"] + 15)  # a hidden neuron: its map, its formula
    page.wait_for_function("() => CR.frame.hover && CR.frame.hover.node === 'h:0:1' && CR.frame.hover.rgba")
    page.wait_for_selector("#tip:not([hidden]) .katex")
    assert "tanh" in page.text_content("#tip")
    page.mouse.move(box["x"] + box["width"] - 20, box["y"] + box["height"] / 2)  # the output node
    page.wait_for_function("() => CR.hoverNode === 'out'")
    page.wait_for_selector("#tip:not([hidden]) .katex")
    shot(page, "train")
    assert page.errors == []


def test_play_lowers_the_test_loss_on_circle(page, playground_server):
    s0 = state(page, playground_server)
    assert s0["config"]["dataset"] == "circle"
    s = play_until(page, playground_server, 300)
    assert s["test_loss"] < 0.5 * s0["test_loss"], (s0["test_loss"], s["test_loss"])
    assert page.text_content("[data-testid=test-loss]") == f"{s['test_loss']:.4f}"
    tab = playground_server[1].state.hub.tabs[s["session"]]  # the page acks what it drew: it is paced
    assert tab.acked is not None and tab.acked > 5
    shot(page, "train-circle")
    assert page.errors == []


def test_xor_is_learned_from_the_feature_x1x2(page, playground_server):
    configure_and_wait(page, playground_server, "dataset", "xor", "dataset")
    page.click("[data-testid=feature-x1x2]")
    wait_state(page, playground_server, lambda s: s["config"]["features"] == ["x1", "x2", "x1*x2"])
    page.click("[data-testid=feature-x1]")
    page.click("[data-testid=feature-x2]")
    s0 = wait_state(page, playground_server, lambda s: s["config"]["features"] == ["x1*x2"])
    for _ in range(2):
        page.click("[data-testid=remove-layer]")
    s0 = wait_state(page, playground_server, lambda s: s["config"]["hidden"] == [])
    assert s0["parameters"] == 2  # one weight on x1*x2 and a bias: logistic regression on phi(x)
    s = play_until(page, playground_server, 300)
    assert s["test_loss"] < 0.3 * s0["test_loss"], (s0["test_loss"], s["test_loss"])
    shot(page, "train-xor-x1x2")
    assert page.errors == []


def test_dataset_optimizer_and_learning_rate_take_effect(page, playground_server):
    before = page.evaluate("() => CR.points.train.length && CR.points.name")
    configure_and_wait(page, playground_server, "dataset", "moons", "dataset")
    page.wait_for_function("() => CR.points.name === 'moons'")
    assert before == "circle"
    configure_and_wait(page, playground_server, "optimizer", "sgd", "optimizer")
    s = configure_and_wait(page, playground_server, "learning-rate", "0.3", "learning_rate", 0.3)
    assert s["optimizer"] == "sgd" and s["learning_rate"] == 0.3
    page.wait_for_function("() => document.getElementById('equations').textContent.includes('theta = theta - 0.3 * g')")
    sess = session_of(page, playground_server)
    assert type(sess.opt).__name__ == "SGD" and sess.opt.param_groups[0]["lr"] == 0.3
    w0 = sess.linears[0].weight.numpy().copy()
    page.click("[data-testid=step-once]")
    s = wait_state(page, playground_server, lambda s: s["step"] == 1)
    assert not np.array_equal(w0, sess.linears[0].weight.numpy())
    page.click("[data-testid=reset]")
    wait_state(page, playground_server, lambda s: s["step"] == 0)
    np.testing.assert_array_equal(w0, sess.linears[0].weight.numpy())  # same seed, same initial weights
    configure_and_wait(page, playground_server, "optimizer", "momentum", "optimizer")
    page.wait_for_function("() => document.getElementById('equations').textContent.includes('b = 0.9 * b')")
    assert page.errors == []


def test_quick_clicks_build_on_each_other_while_playing(page, playground_server):
    """Each + or - builds on the widths asked for, not on those of the last frame: clicks faster than
    the server's answer were lost (a click resent the width the previous click had already asked for)."""
    page.select_option("[data-testid=steps-per-second]", "10000")
    page.click("[data-testid=play]")
    for _ in range(4):
        page.click("[data-testid=add-layer]")
    for _ in range(4):
        page.click("[data-testid=add-neuron-0]")
    page.click("[data-testid=feature-x1sq]")
    page.click("[data-testid=feature-x2sq]")
    s = wait_state(page, playground_server, lambda s: s["config"]["hidden"] == [8, 4, 2, 2, 2, 2]
                   and s["config"]["features"] == ["x1", "x2", "x1^2", "x2^2"])
    assert s["playing"]
    page.wait_for_function("() => Object.keys(CR.pending).length === 0 && CR.frame.hidden.length === 6")
    assert page.is_checked("[data-testid=feature-x2sq]") and page.is_checked("[data-testid=feature-x1]")
    page.click("[data-testid=play]")
    assert page.errors == []


def test_csv_upload_and_the_clis_message(page, playground_server, tmp_path):
    good = tmp_path / "blobs.csv"
    rng = np.random.default_rng(1)
    pts = np.concatenate([rng.normal(-2, 0.6, (60, 2)), rng.normal(2, 0.6, (60, 2))])
    good.write_text("a,b,kind\n" + "\n".join(f"{x:.3f},{y:.3f},{'cat' if i < 60 else 'dog'}"
                                              for i, (x, y) in enumerate(pts)))
    page.set_input_files("[data-testid=csv-upload]", str(good))
    s = wait_state(page, playground_server, lambda s: s["dataset"] == "blobs")
    assert s["config"]["dataset"] == "csv" and s["task"] == "classification"
    page.wait_for_function("() => CR.points.name === 'blobs' && CR.points.classes.join() === 'cat,dog'")
    s = play_until(page, playground_server, 100)
    assert s["test_loss"] < 0.2
    shot(page, "train-csv")
    bad = tmp_path / "broken.csv"
    bad.write_text("a,b,kind\n1,2,cat\n3,,dog\n")
    with pytest.raises(ValueError) as cli:
        datasets.load_csv(bad)
    expected = str(cli.value).replace(str(tmp_path) + "/", "")
    page.set_input_files("[data-testid=csv-upload]", str(bad))
    page.wait_for_selector("[data-testid=error]:not([hidden])")
    assert page.text_content("[data-testid=error]") == expected
    assert "column 'b' has an empty value at line 3" in expected
    assert state(page, playground_server)["dataset"] == "blobs"  # the good data stays
    assert page.errors == []


def _numbers(text: str) -> list[float]:
    return [float(v) for v in re.findall(r"-?\d+(?:\.\d+)?(?:e[-+]?\d+)?", text)]


def _check_cell(text: str, want: np.ndarray):
    """A ledger cell shows the number, up to 4 entries, or '(shape) |.|=norm'."""
    want = np.asarray(want, np.float64)
    if text.startswith("("):
        shape, norm = text.split("|.|=")
        assert tuple(int(v) for v in _numbers(shape)) == want.shape
        assert float(norm) == pytest.approx(np.linalg.norm(want), rel=2e-3, abs=1e-6)
    else:
        np.testing.assert_allclose(_numbers(text), want.ravel(), rtol=2e-3, atol=1e-6)


def test_backprop_panel_shows_viz_backprop_trace(page, playground_server):
    page.click("[data-testid=step-once]")
    wait_state(page, playground_server, lambda s: s["step"] == 1)
    page.click("[data-testid=tab-backprop]")
    page.fill("[data-testid=bp-example]", "7")
    page.press("[data-testid=bp-example]", "Enter")
    page.wait_for_function("() => CR.bp.data && CR.bp.data.example === 7")
    sess = session_of(page, playground_server)
    sess.model.eval()
    x = cr.tensor(sess.Ftr[7:8])
    x.name = "phi(x)"
    y = sess.data.y_train[7:8].astype(np.float32)
    loss = cr.functional.binary_cross_entropy_with_logits(sess.model(x).reshape(-1), y)
    loss.name = "L"
    trace = cr.viz.backprop_trace(loss, names=sess.model)
    rows = page.locator("[data-testid=bp-row]")
    assert rows.count() == len(trace.rows) > 5
    for k, r in enumerate(trace.rows):
        row = rows.nth(k)
        assert row.locator("[data-testid=bp-node]").text_content() == f"{r.output} = {r.op}"
        assert row.locator("[data-testid=bp-input]").text_content() == f"{r.input} (arg {r.arg})"
        _check_cell(row.locator("[data-testid=bp-incoming]").text_content(), r.incoming)
        _check_cell(row.locator("[data-testid=bp-contribution]").text_content(), r.contribution)
        _check_cell(row.locator("[data-testid=bp-accumulated]").text_content(), r.accumulated)
    # stepping: back to the start, then node by node in reverse topological order
    page.click("[data-testid=bp-next]")  # past the end wraps to step 0
    assert page.locator("#bp-table tr.current").count() == 0
    page.click("[data-testid=bp-next]")
    page.click("[data-testid=bp-next]")
    assert page.locator("#bp-table tr.current [data-testid=bp-step]").text_content() == "2"
    assert page.locator("#bp-table tr.pending").count() == len(trace.rows) - 2
    overflow = page.evaluate("() => [...document.querySelectorAll('#bp-graph g')].flatMap(g => [...g.querySelectorAll('text')]"
                             ".filter(t => t.getComputedTextLength() > g.querySelector('rect').width.baseVal.value - 6)"
                             ".map(t => t.textContent))")
    assert overflow == []  # every line of a node fits its box
    assert page.locator("#bp-graph g.const", has_text="constant").count() >= 1
    shot(page, "backprop")
    assert page.errors == []


def test_cost_panel(page, playground_server):
    page.click("[data-testid=tab-cost]")
    page.wait_for_selector("[data-testid=cost-row]")
    sess = session_of(page, playground_server)
    est = cr.cost.estimate(sess.model, sess.config["batch_size"], optimizer=sess.opt)
    first = page.locator("[data-testid=cost-row]").first.locator("td")
    assert [first.nth(k).text_content() for k in range(4)] == ["parameters", str(est.lecture["parameters"]),
                                                              str(est.parameters), str(sess.n_params)]
    assert "compute: backward FLOPs" in page.text_content("[data-testid=cost-table]")
    page.hover("[data-testid=cost-row] >> nth=0 >> td >> nth=0")
    page.wait_for_selector("#tip:not([hidden]) .katex")
    shot(page, "cost")
    assert page.errors == []


def test_optimizer_race(page, playground_server):
    page.click("[data-testid=tab-race]")
    page.wait_for_selector("[data-testid=race-row]")
    assert page.locator("[data-testid=race-row]").count() == 3
    page.click("[data-testid=race-opt-nesterov]")
    page.fill("[data-testid=race-momentum]", "0.5")
    page.dispatch_event("[data-testid=race-momentum]", "input")
    page.wait_for_function("() => document.querySelectorAll('[data-testid=race-row]').length === 4")
    page.wait_for_function("() => document.getElementById('race-momentum-v').textContent === '0.50'")
    lr = 10 ** float(page.input_value("[data-testid=race-lr]"))
    want = pg.run("ravine", ["momentum"], steps=100, settings={"momentum": {"lr": lr, "momentum": 0.5}})["momentum"]
    page.wait_for_function("() => [...document.querySelectorAll('[data-testid=race-row]')]"
                           ".some(r => r.textContent.includes('momentum=0.5'))")
    row = page.locator("[data-testid=race-row]", has_text="momentum=0.5").first
    cells = row.locator("td")
    assert cells.nth(2).text_content() == ("–" if want.steps_to_tol is None else str(want.steps_to_tol))
    shot(page, "race")
    page.select_option("[data-testid=race-function]", "rosenbrock")
    page.wait_for_function("() => CR.lastRace && CR.lastRace.function === 'rosenbrock'")
    shot(page, "race-rosenbrock")
    assert page.errors == []
