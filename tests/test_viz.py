"""cr.viz: the graph picture (structure of the DOT text, gradient norms, backward order) and the
backprop ledger checked row by row against hand derivations done independently here."""

import re
import shutil
import subprocess

import numpy as np
import pytest

import chainrule as cr
from chainrule import viz


def scalar(v, name):
    t = cr.tensor(v, dtype=cr.float64, requires_grad=True)
    t.name = name
    return t


def parse_dot(dot: str):
    """Node id -> label and the (src, dst, attrs) edges, from the DOT text alone."""
    nodes = dict(re.findall(r'^\s*(n\d+) \[label="((?:[^"\\]|\\.)*)"', dot, flags=re.M))
    edges = re.findall(r"^\s*(n\d+) -> (n\d+)(?: \[label=\"(\d+)\"\])?;", dot, flags=re.M)
    return nodes, edges


def first_line(label):
    return label.split("\\n")[0]


# ----- the lecture's chain-rule example: d/dx log(x^2 + 1) = 2x / (x^2 + 1) ---------------------------
@pytest.mark.parametrize("xv", [3.0, -0.5, 0.0, 2.25])
def test_trace_log_x2_plus_1_matches_hand_derivation(xv):
    x = scalar(xv, "x")
    s = x ** 2
    s.name = "s"
    z = s + 1
    z.name = "z"
    L = cr.log(z)
    L.name = "L"
    tr = viz.backprop_trace(L)
    # Hand derivation, step by step (lecture: z = x^2 + 1, L = log z).
    zv = xv ** 2 + 1
    dL_dz = 1 / zv
    assert [(r.output, r.input) for r in tr.rows] == [("L", "z"), ("z", "s"), ("s", "x")]
    r = tr.row("L", "z")
    assert r.local == pytest.approx(1 / zv) and r.incoming == pytest.approx(1.0)
    assert r.accumulated == pytest.approx(dL_dz)
    r = tr.row("z", "s")
    assert r.local == pytest.approx(1.0) and r.incoming == pytest.approx(dL_dz)
    r = tr.row("s", "x")
    assert r.local == pytest.approx(2 * xv) and r.incoming == pytest.approx(dL_dz)
    assert r.accumulated == pytest.approx(2 * xv / (xv ** 2 + 1))
    assert tr.grads["x"] == pytest.approx(2 * xv / (xv ** 2 + 1))
    assert "dL/dx" in tr.text()
    assert x.grad is None, "the ledger must not touch .grad"


# ----- the lecture's worked example: a2 = g2(w2 * g1(w1 * x)), L = 1/2 (a2 - y*)^2, g = ReLU ----------
def lecture_network(xv, w1v, w2v, yv):
    x, w1, w2, y = scalar(xv, "x"), scalar(w1v, "w1"), scalar(w2v, "w2"), cr.tensor(yv, dtype=cr.float64)
    y.name = "y"
    z1 = w1 * x; z1.name = "z1"
    a1 = cr.relu(z1); a1.name = "a1"
    z2 = w2 * a1; z2.name = "z2"
    a2 = cr.relu(z2); a2.name = "a2"
    d = a2 - y; d.name = "d"
    sq = d ** 2; sq.name = "sq"
    L = 0.5 * sq; L.name = "L"
    return L, (x, w1, w2)


@pytest.mark.parametrize("xv,w1v,w2v,yv", [
    (1.5, 2.0, 0.5, 3.0),     # both ReLUs active
    (1.0, -1.0, 0.7, 0.2),    # first ReLU off: no gradient reaches w1 or x
    (2.0, 1.0, -0.5, 1.0),    # second ReLU off
])
def test_trace_lecture_network_matches_hand_derivation(xv, w1v, w2v, yv):
    L, (x, w1, w2) = lecture_network(xv, w1v, w2v, yv)
    tr = viz.backprop_trace(L)
    # Independent hand derivation.
    z1 = w1v * xv; a1 = max(z1, 0.0); z2 = w2v * a1; a2 = max(z2, 0.0)
    dL_da2 = a2 - yv
    da2_dz2 = 1.0 if z2 > 0 else 0.0
    da1_dz1 = 1.0 if z1 > 0 else 0.0
    dL_dz2 = dL_da2 * da2_dz2
    dL_da1 = dL_dz2 * w2v
    dL_dz1 = dL_da1 * da1_dz1
    hand = {  # (output, input): (local, incoming, accumulated)
        ("L", "sq"): (0.5, 1.0, 0.5),
        ("sq", "d"): (2 * (a2 - yv), 0.5, dL_da2),
        ("d", "a2"): (1.0, dL_da2, dL_da2),
        ("a2", "z2"): (da2_dz2, dL_da2, dL_dz2),
        ("z2", "w2"): (a1, dL_dz2, dL_dz2 * a1),
        ("z2", "a1"): (w2v, dL_dz2, dL_da1),
        ("a1", "z1"): (da1_dz1, dL_da1, dL_dz1),
        ("z1", "w1"): (xv, dL_dz1, dL_dz1 * xv),
        ("z1", "x"): (w1v, dL_dz1, dL_dz1 * w1v),
    }
    assert {(r.output, r.input) for r in tr.rows} == set(hand)
    for (out, inp), (local, incoming, acc) in hand.items():
        r = tr.row(out, inp)
        assert (r.local, r.incoming, r.accumulated) == pytest.approx((local, incoming, acc)), (out, inp)
        assert r.contribution == pytest.approx(r.local * r.incoming)
    # Reverse topological order: every node's row comes after all rows feeding its gradient.
    pos = {(r.output, r.input): r.step for r in tr.rows}
    assert pos[("L", "sq")] == 1 and pos[("a2", "z2")] < pos[("z2", "a1")] < pos[("a1", "z1")] < pos[("z1", "x")]
    # The ledger agrees with the engine.
    L.backward()
    for t in (x, w1, w2):
        assert tr.grads[t.name] == pytest.approx(float(t.grad.item()))


def test_trace_accumulates_over_multiple_uses_and_matches_jacobians():
    rng = np.random.default_rng(0)
    X = cr.tensor(rng.standard_normal((3, 2)), dtype=cr.float64)
    X.name = "X"
    W = cr.tensor(rng.standard_normal((2, 4)), dtype=cr.float64, requires_grad=True)
    W.name = "W"
    b = cr.tensor(rng.standard_normal(4), dtype=cr.float64, requires_grad=True)
    b.name = "b"
    h = cr.tanh(X @ W + b)            # b is broadcast over rows: its contribution is un-broadcast
    L = (h * h).sum() + (W * W).sum()  # W and h are used twice
    tr = viz.backprop_trace(L)
    for r in tr.rows:
        if r.local is not None:
            inc, J = np.asarray(r.incoming), np.asarray(r.local)
            expect = inc.reshape(-1) @ J.reshape(inc.size, -1)
            assert np.allclose(expect.reshape(np.shape(r.contribution)), r.contribution), (r.output, r.input)
    W_rows = [r for r in tr.rows if r.input == "W"]
    assert len(W_rows) == 3   # matmul and both sides of W * W
    assert np.allclose(W_rows[-1].accumulated, sum(r.contribution for r in W_rows))
    gW, gb = cr.grad(L, [W, b])
    assert np.allclose(tr.grads["W"], gW._data) and np.allclose(tr.grads["b"], gb._data)
    assert np.shape(tr.row("add#4", "b").contribution) == (4,)


# ----- the graph --------------------------------------------------------------------------------
def test_dot_structure_log_example():
    x = scalar(3.0, "x")
    L = cr.log(x ** 2 + 1)
    g = viz.graph(L)
    nodes, edges = parse_dot(g.to_dot())
    labels = {k: first_line(v) for k, v in nodes.items()}
    assert sorted(labels.values()) == ["#0 x", "1", "2", "add#2", "log#3", "pow#1"]
    named = {(labels[s], labels[d]) for s, d, _ in edges}
    assert named == {("#0 x", "pow#1"), ("2", "pow#1"), ("pow#1", "add#2"), ("1", "add#2"), ("add#2", "log#3")}
    # Argument positions on the edges of binary ops.
    assert {(labels[s], a) for s, d, a in edges if labels[d] == "pow#1"} == {("#0 x", "0"), ("2", "1")}
    assert len(g.ops) == 3 and [n.op for n in g.ops] == ["pow", "add", "log"]
    assert "peripheries=2" in g.to_dot().splitlines()[[i for i, ln in enumerate(g.to_dot().splitlines())
                                                       if ln.strip().startswith("n3 ")][0]]


def test_graph_one_node_per_op_and_edges_match_inputs():
    rng = np.random.default_rng(1)
    x = cr.tensor(rng.standard_normal((4, 3)))
    W1 = cr.tensor(rng.standard_normal((3, 5)), requires_grad=True)
    W2 = cr.tensor(rng.standard_normal((5, 2)), requires_grad=True)
    h = cr.relu(x @ W1)
    out = h @ W2
    loss = (out * out).mean() + (h * h).sum()   # h is shared: one node, two consumers
    expected_ops = []

    def walk(t, seen):
        if id(t) in seen or t._ctx is None:
            return
        seen.add(id(t))
        expected_ops.append(t)
        for i in t._ctx.inputs:
            if isinstance(i, cr.Tensor):
                walk(i, seen)
    walk(loss, set())
    g = viz.graph(loss, constants=False)
    nodes, edges = parse_dot(g.to_dot())
    assert len(nodes) == len(g.nodes) == len(expected_ops) + 3   # + leaves x, W1, W2
    assert len([n for n in g.nodes if n.kind == "op"]) == len(expected_ops)
    assert len(re.findall(r"shape=box", g.to_dot())) == len(expected_ops)
    # Edges in the DOT text are exactly the tensor arguments of each op.
    expect_edges = sum(sum(isinstance(i, cr.Tensor) for i in t._ctx.inputs) for t in expected_ops)
    assert len(edges) == expect_edges == len(g.edges)
    for src, dst in g.edges:
        assert src < dst, "forward topological numbering: inputs before outputs"
    h_node = [n for n in g.nodes if n.op == "relu"][0]
    assert sum(1 for s, _ in g.edges if s == h_node.index) == 3   # h @ W2 and both arguments of h * h


def test_graph_grads_true_gives_every_node_gradient_without_touching_grad():
    x = scalar(0.7, "x")
    z = x * x; z.name = "z"
    L = cr.sin(z); L.name = "L"
    g = viz.graph(L, grads=True)
    by = {n.label: n for n in g.nodes}
    assert by["L"].grad_norm == pytest.approx(1.0)
    assert by["z"].grad_norm == pytest.approx(abs(np.cos(0.49)))
    assert by["x"].grad_norm == pytest.approx(abs(np.cos(0.49) * 2 * 0.7))
    assert x.grad is None
    # Backward order: root first, and every consumer before its inputs.
    assert by["L"].backward_step == 1 and by["z"].backward_step == 2 and by["x"].backward_step == 3
    assert [n.label for n in g.backward_order] == ["L", "z", "x"]
    L.backward()   # the graph was retained by graph(): a normal backward still works
    assert x.grad.item() == pytest.approx(np.cos(0.49) * 2 * 0.7)


def test_graph_after_backward_retain_graph_shows_leaf_grad_and_freed_graph_raises():
    x = scalar(2.0, "x")
    L = cr.exp(x * 3)
    L.backward(retain_graph=True)
    g = viz.graph(L)
    assert g.nodes[0].label == "x" and g.nodes[0].grad_norm == pytest.approx(3 * np.exp(6))
    assert "|grad|" in g.to_dot() and "backward step" in g.to_dot()
    L2 = cr.exp(x * 3)
    L2.backward()
    with pytest.raises(RuntimeError, match="retain_graph=True"):
        viz.graph(L2)
    with pytest.raises(RuntimeError, match="retain_graph=True"):
        viz.backprop_trace(L2)


def test_text_listing_has_one_line_per_node_and_deep_chains_do_not_recurse():
    x = scalar(1.0, "x")
    y = x
    for _ in range(3000):
        y = y * 1.0001
    g = viz.graph(y, constants=False)
    assert len(g.ops) == 3000
    lines = str(g).splitlines()
    assert len(lines) == 2 + len(g.nodes)
    assert lines[2].split()[:2] == ["#0", "x"]
    assert g.nodes[0].backward_step == 3001
    tr = viz.backprop_trace(y)
    assert len(tr.rows) == 3000
    assert tr.grads["x"] == pytest.approx(1.0001 ** 3000)


def test_graph_inputs_without_grad_and_to_dict():
    a = cr.tensor([1.0, 2.0])            # data: a leaf backward never visits
    w = cr.tensor([0.5, 0.5], requires_grad=True)
    b = a * w * 2
    g = viz.graph(b)
    assert [n.kind for n in g.nodes] == ["leaf", "leaf", "op", "op", "const"]
    assert g.nodes[0].backward_step is None and g.nodes[1].backward_step is not None
    d = g.to_dict()
    assert d["edges"] == [(0, 2), (1, 2), (2, 3), (4, 3)] and d["root"] == 3
    untracked = cr.tensor([1.0]) * 2     # nothing requires grad: nothing was recorded
    assert len(viz.graph(untracked).nodes) == 1
    with pytest.raises(ValueError, match="requires grad"):
        viz.backprop_trace(untracked)


def test_render_without_dot_explains_how_to_install(tmp_path, monkeypatch):
    x = scalar(1.0, "x")
    g = viz.graph(cr.log(x + 1))
    monkeypatch.setattr(shutil, "which", lambda name: None)
    with pytest.raises(RuntimeError, match="apt-get install graphviz"):
        g.render(tmp_path / "g.svg")
    p = g.render(tmp_path / "g.dot")      # DOT text needs nothing
    assert p.read_text() == g.to_dot()


@pytest.mark.skipif(shutil.which("dot") is None, reason="Graphviz `dot` not installed (optional)")
def test_render_svg_and_png_with_dot(tmp_path):
    L, _ = lecture_network(1.5, 2.0, 0.5, 3.0)
    g = viz.graph(L, grads=True)
    proc = subprocess.run(["dot", "-Tsvg"], input=g.to_dot().encode(), capture_output=True)
    assert proc.returncode == 0, proc.stderr
    svg = g.render(tmp_path / "net.svg").read_text()
    assert "<svg" in svg and svg.count('class="node"') == len(g.nodes)
    png = g.render(tmp_path / "net.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n"


def test_named_op_nodes_show_name_and_op():
    x = scalar(2.0, "x")
    z = x * x
    z.name = "z"
    nodes, _ = parse_dot(viz.graph(cr.exp(z)).to_dot())
    assert sorted(first_line(v) for v in nodes.values()) == ["#0 x", "#1 z = mul", "exp#2"]


def test_module_parameter_names_label_the_graph_and_ledger_csv(tmp_path):
    import csv

    from chainrule.models import MLP

    cr.manual_seed(0)
    net = MLP([3, 4, 2])
    x = cr.randn(5, 3)
    loss = cr.functional.cross_entropy(net(x), cr.tensor([0, 1, 0, 1, 1]))
    g = viz.graph(loss, grads=True, names=net)
    param_names = {n for n, _ in net.named_parameters()}
    labelled = {n.label for n in g.nodes if n.kind == "leaf" and n.requires_grad}
    assert labelled == param_names
    for n in g.nodes:
        if n.label in param_names:
            p = dict(net.named_parameters())[n.label]
            assert n.shape == p.shape
    tr = viz.backprop_trace(loss, names=net)
    assert set(tr.grads) == param_names
    loss.backward()
    for name, p in net.named_parameters():
        assert np.allclose(tr.grads[name], p.grad._data, atol=1e-6)
    with tr.to_csv(tmp_path / "ledger.csv").open() as f:
        assert len(list(csv.DictReader(f))) == len(tr.rows)


class _Half:
    """A two-input classifier whose P(y = 1 | x) is 1[x0 > 0]; records the grids it is asked about."""

    def __init__(self):
        self.seen = []

    def predict_proba(self, X):
        self.seen.append(X.shape)
        p = (X[:, 0] > 0).astype(np.float32)
        return np.stack([1 - p, p], 1)


def test_plot_decision_regions_draws_each_models_probabilities(tmp_path, monkeypatch):
    import chainrule._plot as plot_mod

    drawn = {}
    real_save = plot_mod.save

    def spy(fig, path, dpi=100):
        drawn["titles"] = [ax.get_title() for ax in fig.axes if ax.get_title()]
        return real_save(fig, path, dpi)

    monkeypatch.setattr(viz, "save", spy)
    a, b = _Half(), _Half()
    X, y = np.array([[-1.0, 0.5], [1.0, -0.5]]), np.array([0, 1])
    out = viz.plot_decision_regions({"a": a, "b": b}, X, y, tmp_path / "regions.png", resolution=11)
    assert open(out, "rb").read(8) == b"\x89PNG\r\n\x1a\n"
    assert a.seen == b.seen == [(121, 2)]                     # the 11 x 11 grid, asked once per model
    assert drawn["titles"] == ["a", "b"]
    with pytest.raises(ValueError, match=r"X must be \(n, 2\) with one label each, got X \(2, 3\)"):
        viz.plot_decision_regions({"a": a}, np.zeros((2, 3)), y, tmp_path / "bad.png")
    with pytest.raises(ValueError, match="no models"):
        viz.plot_decision_regions({}, X, y, tmp_path / "bad.png")
