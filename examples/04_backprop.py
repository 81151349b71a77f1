"""Lecture: backpropagation, on the lecture's two worked examples.

1. d/dx log(x^2 + 1) = 2x / (x^2 + 1): z = x^2 + 1, L = log z, dL/dx = dL/dz * dz/dx.
2. a2 = g2(w2 * g1(w1 * x)), g = ReLU, L = 1/2 (a2 - y*)^2. The forward pass visits the graph in
   topological order, the backward pass in reverse order; the ledger shows each chain-rule step.
"""

import chainrule as cr


def tag(t, name):  # names show up in the graph and in the ledger
    t.name = name
    return t


def leaf(value, name):
    return tag(cr.tensor(value, dtype=cr.float64, requires_grad=True), name)


def log_example(x0=3.0):
    x = leaf(x0, "x")
    L = tag(cr.log(tag(x ** 2 + 1, "z")), "L")
    print(cr.viz.backprop_trace(L).text())
    auto, hand = float(cr.grad(L, [x])[0].item()), 2 * x0 / (x0 ** 2 + 1)
    print(f"d/dx log(x^2+1) at x={x0:g}: autograd {auto:.6f}, hand 2x/(x^2+1) = {hand:.6f}")
    return dict(log_auto=auto, log_hand=hand)


def network_example(x0=1.5, w10=2.0, w20=0.5, y0=1.0):
    x, w1, w2 = leaf(x0, "x"), leaf(w10, "w1"), leaf(w20, "w2")
    a1 = tag(cr.relu(tag(w1 * x, "z1")), "a1")          # a1 = g1(z1), z1 = w1 x
    a2 = tag(cr.relu(tag(w2 * a1, "z2")), "a2")         # a2 = g2(z2), z2 = w2 a1
    L = tag(0.5 * (a2 - y0) ** 2, "L")                  # quadratic loss
    graph = cr.viz.graph(L, grads=True, constants=False)
    print(graph.text())
    forward = [n.label for n in graph.nodes if n.kind != "const"]
    backward = [n.label for n in graph.backward_order]
    print("forward (topological) order:", " -> ".join(forward), "\nbackward (reverse) order:   ", " -> ".join(backward))
    trace = cr.viz.backprop_trace(L)
    print(trace.text())
    a1h = max(0.0, w10 * x0)                            # the hand derivation, one chain-rule step per line
    a2h = max(0.0, w20 * a1h)
    dL_da2 = a2h - y0
    dL_dz2 = dL_da2 * (w20 * a1h > 0)                   # ReLU'(z2) = 1[z2 > 0]
    dL_dw2 = dL_dz2 * a1h
    dL_da1 = dL_dz2 * w20                               # re-use dL/dz2
    dL_dz1 = dL_da1 * (w10 * x0 > 0)
    hand = {"w2": dL_dw2, "w1": dL_dz1 * x0, "x": dL_dz1 * w10}
    auto = {k: float(v) for k, v in trace.grads.items()}
    print("hand:", hand, "\nauto:", auto)
    return dict(hand=hand, auto=auto, forward=forward, backward=backward, graph=graph, dot=graph.to_dot())


def main(quick=False):
    return {**log_example(), **network_example()}


if __name__ == "__main__":
    main()
