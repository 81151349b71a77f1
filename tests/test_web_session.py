"""The playground's server side without a browser: sessions, data, panels, the HTTP/websocket API."""

import asyncio
import base64
import json
import os
import time
import urllib.request

import numpy as np
import pytest

import chainrule as cr
from chainrule import datasets
from chainrule import functional as F
from chainrule import playground as pg
from chainrule.web import data as D
from chainrule.web import panels
from chainrule.web.session import Session, validate


# ----- settings -----------------------------------------------------------------------------------
@pytest.mark.parametrize("changes, words", [
    ({"learning_rate": -1}, ["learning_rate", "[1e-06, 10.0]", "-1"]),
    ({"batch_size": "many"}, ["batch_size", "many"]),
    ({"optimizer": "lbfgs"}, ["optimizer", "adam", "'lbfgs'"]),
    ({"hidden": [4] * 7}, ["hidden", "6", "1..8"]),
    ({"hidden": [9]}, ["hidden", "1..8"]),
    ({"features": ["x3"]}, ["features", "x1*x2"]),
    ({"exec": "import os"}, ["unknown setting", "'exec'"]),
])
def test_bad_settings_are_refused_with_the_range(changes, words):
    with pytest.raises(ValueError) as e:
        validate(changes)
    for w in words:
        assert w in str(e.value)


def test_a_refused_change_leaves_the_session_as_it_was():
    s = Session()
    w = s.linears[0].weight.numpy().copy()
    s.step(3)
    with pytest.raises(ValueError, match="P = 393 parameters"):
        s.configure({"hidden": [8, 8, 8, 8, 8, 8], "optimizer": "newton"})
    s.configure({"hidden": [8, 8, 8, 8, 8, 8]})
    with pytest.raises(ValueError, match="P = 393 parameters"):
        s.configure({"optimizer": "newton"})
    with pytest.raises(ValueError, match="upload a CSV file first"):
        s.configure({"dataset": "csv"})
    assert s.config["hidden"] == [8] * 6 and s.config["optimizer"] == "adam" and s.config["dataset"] == "circle"
    s.step(4)
    assert s.steps == 4
    s.configure({"hidden": [4, 4]})
    np.testing.assert_array_equal(s.linears[0].weight.numpy(), w)  # same seed, same initial weights
    with pytest.raises(ValueError):
        s.configure({"optimizer": "newton", "hidden": [8] * 6})
    assert s.steps == 0 and s.config["hidden"] == [4, 4]


def test_optimizer_change_keeps_the_weights_and_network_change_rebuilds():
    s = Session()
    s.step(20)
    w = s.linears[0].weight.numpy().copy()
    assert s.configure({"optimizer": "sgd", "learning_rate": 0.1}) == {"optimizer"}
    np.testing.assert_array_equal(s.linears[0].weight.numpy(), w)
    assert "theta = theta - 0.1 * g" in s.opt.describe()
    assert s.steps == 20
    assert s.configure({"hidden": [3]}) == {"model", "optimizer"}
    assert s.steps == 0 and [lin.weight.shape for lin in s.linears] == [(3, 2), (1, 3)]
    assert s.configure({"dataset": "moons"}) == {"data", "model", "optimizer"}
    assert s.data.name == "moons"


def test_same_seed_same_initial_weights():
    a, b = Session(config={"seed": 3}), Session(config={"seed": 3})
    for la, lb in zip(a.linears, b.linears):
        np.testing.assert_array_equal(la.weight.numpy(), lb.weight.numpy())
    c = Session(config={"seed": 4})
    assert not np.array_equal(a.linears[0].weight.numpy(), c.linears[0].weight.numpy())


# ----- training -----------------------------------------------------------------------------------
@pytest.mark.parametrize("config", [
    {"dataset": "circle"},
    {"dataset": "xor", "features": ["x1*x2"], "hidden": []},
    {"dataset": "spiral", "hidden": [8, 8], "activation": "relu", "learning_rate": 0.01},
    {"dataset": "gaussians", "optimizer": "momentum", "learning_rate": 0.03},
    {"dataset": "plane", "optimizer": "rmsprop", "learning_rate": 0.01},
    {"dataset": "bumps", "optimizer": "adagrad", "learning_rate": 0.1, "hidden": [8]},
    {"dataset": "moons", "optimizer": "newton", "learning_rate": 1.0, "hidden": [4], "batch_size": 1000},
])
def test_training_lowers_the_test_loss(config):
    s = Session(config=config)
    _, te0 = s.losses()
    s.step(8 if config.get("optimizer") == "newton" else 300)
    tr, te = s.losses()
    assert te < 0.6 * te0, (te0, te)
    assert s.state()["step"] == s.steps


def test_losses_are_the_data_loss_over_each_split():
    s = Session(config={"dataset": "moons", "regularization": "l2", "reg_rate": 0.1, "dropout": 0.3})
    s.step(30)
    s.model.eval()
    z = s.model(cr.tensor(s.Fte))
    expect = F.binary_cross_entropy_with_logits(z.reshape(-1), cr.tensor(s.data.y_test.astype(np.float32)))
    assert s.losses()[1] == pytest.approx(float(expect.numpy()), rel=1e-6)


def test_regularization_terms():
    s = Session(config={"regularization": "l1", "reg_rate": 0.5})
    l1 = sum(np.abs(lin.weight.numpy()).sum() for lin in s.linears)
    assert float(s.penalty().numpy()) == pytest.approx(0.5 * l1, rel=1e-5)
    s.configure({"regularization": "l2"})
    l2 = sum((lin.weight.numpy() ** 2).sum() for lin in s.linears)
    assert float(s.penalty().numpy()) == pytest.approx(0.25 * l2, rel=1e-5)
    s.configure({"regularization": "none"})
    assert s.penalty() is None


def test_dropout_is_live_and_off_in_evaluation():
    s = Session(config={"hidden": [8, 8]})
    s.configure({"dropout": 0.5})
    drops = [m.p for m in s.model.layers if type(m).__name__ == "Dropout"]
    assert drops == [0.5, 0.5]
    a, b = s.losses(), s.losses()
    assert a == b  # evaluation: deterministic, no dropout


def test_schedule_changes_the_learning_rate():
    s = Session(config={"optimizer": "sgd", "learning_rate": 0.1, "schedule": "exponential"})
    s.step(10)
    assert s.opt.param_groups[0]["lr"] == pytest.approx(0.1 * 0.999 ** 10)


def test_mini_batches_cover_an_epoch():
    s = Session(config={"batch_size": 20})
    n = len(s.Ftr)
    seen = []
    for _ in range(n // 20):
        X, _ = s._batch()
        seen.append(X)
    got = np.concatenate(seen)
    assert len(got) == n and len(np.unique(got, axis=0)) == len(np.unique(s.Ftr, axis=0))


# ----- data ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", D.CLASSIFICATION + D.REGRESSION)
def test_datasets_lie_in_the_square(name):
    d = D.make(name, noise=0.3, train_ratio=0.7)
    X = np.concatenate([d.X_train, d.X_test])
    assert np.abs(X).max() == pytest.approx(3.0, rel=1e-5)
    assert len(d.X_train) == pytest.approx(0.7 * len(X), abs=1)
    if d.task == "regression":
        assert np.abs(np.concatenate([d.y_train, d.y_test])).max() == pytest.approx(1.0)
    else:
        assert set(np.unique(d.y_train)) == {0, 1}


def test_features():
    X = np.array([[1.0, 2.0], [-0.5, 3.0]], np.float32)
    got = D.phi(X, ["x1", "x2", "x1^2", "x2^2", "x1*x2", "sin x1", "sin x2"])
    a, b = X[:, 0], X[:, 1]
    np.testing.assert_allclose(got, np.stack([a, b, a * a, b * b, a * b, np.sin(a), np.sin(b)], 1), rtol=1e-6)


def test_csv_upload_good_and_bad(tmp_path):
    rows = ["u,v,label"] + [f"{i % 7},{(i * 3) % 5},{'yes' if i % 2 else 'no'}" for i in range(40)]
    d = D.from_csv("\n".join(rows), "mine.csv")
    assert d.name == "mine" and d.classes == ["no", "yes"] and len(d.X_train) + len(d.X_test) == 40
    bad = "u,v,label\n1,2,a\n3,oops,b\n"
    (tmp_path / "bad.csv").write_text(bad)
    with pytest.raises(ValueError) as cli:
        datasets.load_csv(tmp_path / "bad.csv")
    with pytest.raises(ValueError) as web:
        D.from_csv(bad, "bad.csv")
    assert str(web.value) == str(cli.value).replace(str(tmp_path) + os.sep, "")
    assert "'oops'" in str(web.value) and "line 3" in str(web.value)
    with pytest.raises(ValueError, match="^single: y has a single class"):  # named after the file, as the CLI does
        D.from_csv("a,b,label\n1,2,0\n3,4,0\n", "single.csv")
    with pytest.raises(ValueError, match="exactly 2 numeric feature columns"):
        D.from_csv("a,b,c,label\n1,2,3,0\n2,3,4,1\n3,4,5,0\n4,5,6,1\n", "three.csv")
    with pytest.raises(ValueError, match="at most 1,048,576"):
        D.from_csv("a,b,label\n" + "1,2,0\n" * 200_000, "big.csv")
    with pytest.raises(ValueError, match="at most 5,000"):
        D.from_csv("a,b,label\n" + "1,2,0\n1,3,1\n" * 3000, "long.csv")


def test_csv_with_a_continuous_label_is_regression():
    """The CLI's loader reads a label of many distinct non-integers as a regression target: the
    playground then fits it by squared error, the targets scaled to [-1, 1] (it once trained a
    one-class logistic loss on them)."""
    rng = np.random.default_rng(0)
    X = rng.uniform(0, 10, (200, 2))
    y = 3.0 + 0.5 * X[:, 0] - 0.2 * X[:, 1]
    text = "u,v,price\n" + "\n".join(f"{a:.4f},{b:.4f},{t:.4f}" for (a, b), t in zip(X, y))
    d = D.from_csv(text, "prices.csv")
    assert d.task == "regression" and d.classes == [] and d.y_train.dtype == np.float32
    ys = np.concatenate([d.y_train, d.y_test])
    assert ys.min() == pytest.approx(-1.0) and ys.max() == pytest.approx(1.0)
    s = Session()
    s.upload_csv(text, "prices.csv")
    assert s.data.task == "regression" and s.n_out == 1
    _, te0 = s.losses()
    z = s.model.eval()(cr.tensor(s.Fte)).numpy().ravel()
    assert te0 == pytest.approx(float(np.mean((z - s.data.y_test) ** 2)), rel=1e-5)  # the squared error
    s.step(300)
    assert s.losses()[1] < 0.2 * te0
    assert s.frame()["task"] == "regression"


def test_csv_with_three_classes_trains_with_softmax():
    rng = np.random.default_rng(0)
    centres = np.array([[0, 0], [4, 0], [0, 4]])
    lines = ["a,b,k"] + [f"{x:.3f},{y:.3f},{k}" for k in range(3) for x, y in centres[k] + rng.normal(0, 0.5, (40, 2))]
    s = Session()
    s.upload_csv("\n".join(lines), "three.csv")
    assert s.n_out == 3 and s.config["dataset"] == "csv"
    _, te0 = s.losses()
    s.step(200)
    assert s.losses()[1] < 0.3 * te0
    assert {"out", "out:0", "out:1", "out:2"} <= set(s.thumbnails())
    # P(y = k | x) of class k's map is bluest (highest) near that class's centre
    for k in range(3):
        img = np.frombuffer(base64.b64decode(s.node_map(f"out:{k}")), np.uint8).reshape(50, 50, 4).astype(int)
        X = s.data.X_train[s.data.y_train == k].mean(0)  # playground coordinates of the centre
        col, row = (int((X[0] + D.EXTENT) / (2 * D.EXTENT) * 50), int((D.EXTENT - X[1]) / (2 * D.EXTENT) * 50))
        assert img[row, col, 2] > img[row, col, 0], k


# ----- what the page draws ------------------------------------------------------------------------
def test_heatmap_shows_the_learned_boundary():
    s = Session(config={"dataset": "gaussians", "noise": 0.0})
    s.step(300)
    f = s.frame()
    img = np.frombuffer(base64.b64decode(f["heatmap"]["rgba"]), np.uint8).reshape(50, 50, 4)
    # gaussians: class 1 (blue) around (+1, +1) scaled, class 0 (orange) around (-1, -1)
    top_right, bottom_left = img[10, 40, :3].astype(int), img[40, 10, :3].astype(int)
    assert top_right[2] > top_right[0] and bottom_left[0] > bottom_left[2]
    assert len(f["weights"]) == 3 and np.shape(f["weights"][0]) == (4, 2)
    assert set(f["thumbnails"]) == {"f:0", "f:1", *(f"h:{k}:{j}" for k in range(2) for j in range(4)), "out"}
    assert "Adam" in f["describe"] and "t = 300" in f["describe"]
    json.dumps(f, allow_nan=False)
    lean = s.frame(thumbnails=False, describe=False)  # a playing tab's frame between two full ones
    assert "thumbnails" not in lean and "describe" not in lean and lean["heatmap"] == f["heatmap"]


def test_node_maps():
    s = Session()
    s.step(5)
    hidden, _ = s._forward(s.Fgrid)
    img = np.frombuffer(base64.b64decode(s.node_map("h:1:2")), np.uint8).reshape(50, 50, 4)
    v = hidden[1][:, 2].reshape(50, 50)
    brightest_blue = np.unravel_index(np.argmax(v), v.shape)
    assert img[brightest_blue][2] > img[brightest_blue][0]  # the unit's largest output is drawn blue
    assert s.node_map("h:9:0") is None and s.node_map("nope") is None


def test_history_is_bounded():
    s = Session(config={"batch_size": 1000})
    for _ in range(450):
        s.step(1)
        s.record()
    assert len(s.history) <= 401 and s.history[-1][0] == 450 and s.history[0][0] == 1


# ----- panels -------------------------------------------------------------------------------------
def test_backprop_panel_is_viz_backprop_trace():
    s = Session(config={"hidden": [3]})
    s.step(10)
    got = panels.backprop(s, 5)
    x = cr.tensor(s.Ftr[5:6])
    s.model.eval()
    loss = F.binary_cross_entropy_with_logits(s.model(x).reshape(-1), s.data.y_train[5:6].astype(np.float32))
    want = cr.viz.backprop_trace(loss, names=s.model)
    assert len(got["trace"]["rows"]) == len(want.rows)
    for g, w in zip(got["trace"]["rows"], want.rows):
        assert (g["op"], g["input"]) == (w.op, w.input)
        np.testing.assert_allclose(g["accumulated"], w.accumulated, rtol=1e-6)
    np.testing.assert_allclose(got["trace"]["grads"]["layers.0.weight"], want.grads["layers.0.weight"], rtol=1e-6)
    assert got["loss"] == pytest.approx(float(loss.numpy()))
    with pytest.raises(ValueError, match="example must be an integer"):
        panels.backprop(s, 10_000)


def test_cost_panel_is_cost_estimate_and_measure():
    s = Session(config={"hidden": [8, 8], "batch_size": 32})
    got = panels.cost_table(s)
    est = cr.cost.estimate(s.model, 32, optimizer=s.opt)
    rows = {r["quantity"]: r for r in got["rows"]}
    assert rows["parameters"]["estimate"] == est.parameters == s.n_params == rows["parameters"]["measured"]
    assert rows["compute: forward MACs"]["measured"] == rows["compute: forward MACs"]["estimate"] == 32 * (2 * 8 + 8 * 8 + 8)
    assert all(r["tex"] for r in got["rows"])
    s.configure({"optimizer": "newton", "hidden": [4]})
    assert panels.cost_table(s)["measured"] is False


def test_race_panel_is_playground_run():
    got = panels.race("ravine", ["sgd", "momentum"], learning_rate=0.05, momentum=0.5, steps=60)
    settings = {"sgd": {"lr": 0.05}, "momentum": {"lr": 0.05, "momentum": 0.5}}
    want = pg.run("ravine", ["sgd", "momentum"], steps=60, settings=settings)
    for p in got["paths"]:
        np.testing.assert_allclose(p["path"], want[p["name"]].path, atol=1e-5)
        assert p["steps_to_tol"] == want[p["name"]].steps_to_tol
    with pytest.raises(ValueError, match="optimizers"):
        panels.race("ravine", ["sgd", "os.system"])
    with pytest.raises(ValueError, match="steps"):
        panels.race("ravine", ["sgd"], steps=10_000)


# ----- the HTTP and websocket API -----------------------------------------------------------------
def _get(url):
    with urllib.request.urlopen(url, timeout=30) as r:
        return r.status, r.headers, r.read()


async def _recv(ws, kind, timeout=60):
    deadline = time.monotonic() + timeout
    while True:
        msg = json.loads(await asyncio.wait_for(ws.recv(), max(0.1, deadline - time.monotonic())))
        if msg["type"] == kind:
            return msg


def test_api_state_and_session_lifecycle(playground_server):
    import websockets

    url, app = playground_server
    hub = app.state.hub

    async def go():
        async with websockets.connect(url.replace("http", "ws") + "/ws", max_size=None) as ws:
            hello = await _recv(ws, "hello")
            sid = hello["session"]
            await _recv(ws, "frame")
            await ws.send(json.dumps({"type": "step"}))
            frame = await _recv(ws, "frame")
            assert frame["step"] == 1
            state = json.loads((await asyncio.to_thread(_get, f"{url}/api/state?session={sid}"))[2])
            assert state["step"] == 1 and {"train_loss", "test_loss"} <= set(state)
            assert state["train_loss"] == pytest.approx(frame["train_loss"])
            await ws.send(json.dumps({"type": "config", "changes": {"learning_rate": 99}}))
            err = await _recv(ws, "error")
            assert "learning_rate must be in" in err["message"]
            await ws.send("not json")
            assert "Expecting value" in (await _recv(ws, "error"))["message"]
            await ws.send(json.dumps({"type": "shell", "cmd": "ls"}))
            assert "unknown message type 'shell'" in (await _recv(ws, "error"))["message"]
            await ws.send(json.dumps({"type": "play"}))
            playing = await _recv(ws, "frame")
            while playing["step"] < 20:
                playing = await _recv(ws, "frame")
            assert sid in hub.sessions
        return sid

    sid = asyncio.run(go())
    deadline = time.monotonic() + 30
    while sid in hub.sessions and time.monotonic() < deadline:  # a closed tab frees its session
        time.sleep(0.05)
    assert sid not in hub.sessions


def test_a_bad_message_never_closes_the_tab(playground_server):
    """Each of these once closed the socket with a traceback in the server's log; now each is
    answered with a message and the tab keeps its session."""
    import websockets

    url, _ = playground_server
    upload = {"type": "upload", "text": "a,b,c\n1,2,0\n2,x,1\n"}  # 'x': the loader's message names the file
    bad = [
        (b"\x00\x01", "binary frame"),
        ('{"type": "config", "changes": {"batch_size": Infinity}}', "batch_size must be a number in [1, 1000]"),
        ('{"type": "config", "changes": {"seed": 1e400}}', "seed must be a number"),
        ("[" * 100_000, "nested too deeply"),
        (json.dumps({**upload, "filename": ".."}), "..: column 'b'"),
        (json.dumps({**upload, "filename": "é" * 150 + ".csv"}), "é" * 150 + ".csv: column 'b'"),
    ]

    async def go():
        async with websockets.connect(url.replace("http", "ws") + "/ws", max_size=None) as ws:
            await _recv(ws, "frame")
            for k, (payload, words) in enumerate(bad):
                await ws.send(payload)
                assert words in (await _recv(ws, "error"))["message"], payload[:40]
                await ws.send(json.dumps({"type": "step"}))
                while (await _recv(ws, "frame"))["step"] != k + 1:
                    pass

    asyncio.run(go())


def test_a_page_that_acks_has_at_most_two_frames_in_flight(playground_server):
    """A playing tab is sent a frame only while fewer than WINDOW are unacknowledged; training goes
    on meanwhile, and the frame after an ack carries the latest step. (A page slower to draw than the
    server to train once fell seconds behind, every click answered after the queued frames.)"""
    import websockets

    from chainrule.web.server import WINDOW

    url, app = playground_server

    async def go():
        async with websockets.connect(url.replace("http", "ws") + "/ws", max_size=None) as ws:
            sid = (await _recv(ws, "hello"))["session"]
            first = await _recv(ws, "frame")
            await ws.send(json.dumps({"type": "ack", "seq": first["seq"]}))
            await ws.send(json.dumps({"type": "config", "changes": {"steps_per_second": 10_000}}))
            await ws.send(json.dumps({"type": "play"}))
            async def until_quiet():  # the frames that come before the server stops sending
                got = []
                with pytest.raises(TimeoutError):
                    while True:
                        got.append(await _recv(ws, "frame", timeout=3))
                return got

            assert [f["seq"] for f in await until_quiet()] == [1, 2]  # the replies to config and play
            await ws.send(json.dumps({"type": "ack", "seq": 2}))
            frames = await until_quiet()  # the training loop's: WINDOW of them, then none until an ack
            assert [f["seq"] for f in frames] == list(range(3, 3 + WINDOW))
            assert app.state.hub.tabs[sid].sent == 3 + WINDOW
            stepped = json.loads((await asyncio.to_thread(_get, f"{url}/api/state?session={sid}"))[2])["step"]
            assert stepped > frames[-1]["step"]  # it trained on while nothing was sent
            await ws.send(json.dumps({"type": "ack", "seq": frames[-1]["seq"]}))
            nxt = await _recv(ws, "frame")
            assert nxt["seq"] == 3 + WINDOW and nxt["step"] >= stepped
            await ws.send(json.dumps({"type": "ack", "seq": 10_000}))
            assert "ack: seq must be the number of a frame sent" in (await _recv(ws, "error"))["message"]

    asyncio.run(go())


def test_the_race_runs_off_the_event_loop(playground_server, monkeypatch):
    """A race of 7 optimizers x 500 steps takes seconds: run on the event loop it froze every tab's
    training and frames; it runs in a worker thread (it touches no session)."""
    import websockets

    from chainrule.web import server

    url, _ = playground_server
    seen, run = [], panels.race

    def race(*args):
        try:
            asyncio.get_running_loop()
            seen.append("event loop")
        except RuntimeError:
            seen.append("worker thread")
        return run(*args)

    monkeypatch.setattr(server.panels, "race", race)

    async def go():
        async with websockets.connect(url.replace("http", "ws") + "/ws", max_size=None) as ws:
            await _recv(ws, "frame")
            await ws.send(json.dumps({"type": "race", "function": "ravine", "optimizers": ["sgd", "momentum"],
                                      "learning_rate": 0.05, "momentum": 0.5, "steps": 60}))
            got = await _recv(ws, "race")
            await ws.send(json.dumps({"type": "race", "optimizers": ["sgd"], "steps": 0}))
            assert "steps must be an integer" in (await _recv(ws, "error"))["message"]
            return got

    got = asyncio.run(go())
    assert seen == ["worker thread", "worker thread"]
    want = pg.run("ravine", ["momentum"], steps=60, settings={"momentum": {"lr": 0.05, "momentum": 0.5}})["momentum"]
    np.testing.assert_allclose(next(p["path"] for p in got["paths"] if p["name"] == "momentum"), want.path, atol=1e-5)


def test_static_assets_and_origin_check(playground_server):
    import websockets

    url, _ = playground_server
    status, _, body = _get(url + "/")
    assert status == 200 and b'data-testid="boundary"' in body and b"katex.min.js" in body
    for asset in ("/static/app.js", "/static/vendor/katex/katex.min.js", "/static/vendor/katex/LICENSE",
                  "/static/vendor/katex/fonts/KaTeX_Main-Regular.woff2"):
        assert _get(url + asset)[0] == 200
    assert b"http" not in _get(url + "/")[2].replace(b"http-equiv", b"")  # no CDN: every asset is ours

    async def foreign():
        async with websockets.connect(url.replace("http", "ws") + "/ws", origin="http://evil.example") as ws:
            await ws.recv()

    with pytest.raises(websockets.exceptions.WebSocketException):
        asyncio.run(foreign())


def test_max_sessions(playground_server):
    import websockets

    url, app = playground_server

    async def go():
        socks = [await websockets.connect(url.replace("http", "ws") + "/ws", max_size=None) for _ in range(8)]
        try:
            extra = await websockets.connect(url.replace("http", "ws") + "/ws")
            msg = json.loads(await extra.recv())
            await extra.close()
            return msg
        finally:
            for s in socks:
                await s.close()

    msg = asyncio.run(go())
    assert msg["type"] == "error" and "8 tabs" in msg["message"]


def test_cli_lists_playground():
    from chainrule.cli import build_parser

    args = build_parser().parse_args(["playground", "--port", "0"])
    assert args.host == "127.0.0.1" and args.port == 0 and not args.open
    from chainrule.web import is_loopback
    assert is_loopback("127.0.0.1") and is_loopback("::1") and not is_loopback("0.0.0.0")


def test_every_static_file_ships_in_the_wheel():
    """pyproject's package-data globs cover every file of the page, so a wheel works offline."""
    import fnmatch
    from pathlib import Path

    tomllib = pytest.importorskip("tomllib")  # Python 3.11+

    root = Path(__file__).parents[1]
    globs = tomllib.loads((root / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]["chainrule.web"]
    web = root / "src" / "chainrule" / "web"
    files = [p.relative_to(web).as_posix() for p in (web / "static").rglob("*") if p.is_file()]
    assert len(files) > 20
    for f in files:
        assert any(fnmatch.fnmatch(f, g) and f.count("/") == g.count("/") for g in globs), f


def test_training_pace():
    """Each frame trains the steps the tab's speed owes since the last one, at most BURST seconds' worth."""
    from chainrule.web.server import BURST, steps_owed

    owed, total = 0.0, 0
    for _ in range(60):  # one second of 60 frames at 30 steps/s: a step every other frame
        n, owed = steps_owed(owed, 30, 1 / 60, 1e-3)
        total += n
        assert n in (0, 1)
    assert total in (29, 30)
    n, owed = steps_owed(0.0, 10_000, 1.0, 1e-3)  # far behind: only what fits in a burst, the debt dropped
    assert n == int(BURST / 1e-3) and owed < 1
    assert steps_owed(0.0, 10_000, 1.0, 10.0)[0] == 1  # Newton-slow steps: still one per frame


def test_tabs_have_their_own_sessions(playground_server):
    import websockets

    url, app = playground_server
    ws_url = url.replace("http", "ws") + "/ws"

    async def go():
        async with websockets.connect(ws_url, max_size=None) as a, websockets.connect(ws_url, max_size=None) as b:
            sa, sb = (await _recv(a, "hello"))["session"], (await _recv(b, "hello"))["session"]
            assert sa != sb
            await a.send(json.dumps({"type": "config", "changes": {"optimizer": "sgd", "dataset": "xor"}}))
            await a.send(json.dumps({"type": "step"}))
            while (await _recv(a, "frame"))["step"] != 1:
                pass
            got_a = json.loads((await asyncio.to_thread(_get, f"{url}/api/state?session={sa}"))[2])
            got_b = json.loads((await asyncio.to_thread(_get, f"{url}/api/state?session={sb}"))[2])
            assert (got_a["optimizer"], got_a["dataset"], got_a["step"]) == ("sgd", "xor", 1)
            assert (got_b["optimizer"], got_b["dataset"], got_b["step"]) == ("adam", "circle", 0)
            hub = app.state.hub
            assert hub.sessions[sa].model is not hub.sessions[sb].model

    asyncio.run(go())
