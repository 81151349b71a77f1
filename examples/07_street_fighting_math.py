"""Lecture: street-fighting math for the D x 2D network (batch B, hidden size D).

Parameters D x 2D; inference memory D x 2D + B x 2D; training memory D x 2D + 2 x D x 2D (Adam's
m and v) + B x D + B x 2D; inference compute B x D x 2D multiply-adds; training compute
B x D x 2D + 2 x B x D x 2D ("2x for the backward pass: gradients for the weights and the input").
cr.cost.estimate_mlp computes these from the sizes; cr.cost.measure counts what actually ran.
"""

import numpy as np

import chainrule as cr
import chainrule.nn.functional as F


def lecture_formulas(D, B):
    P = D * 2 * D
    return dict(parameters=P, inference_memory=P + B * 2 * D, training_memory=P + 2 * P + B * D + B * 2 * D,
                inference_compute=B * P, training_compute=B * P + 2 * B * P)


def one_network(D, B):
    est = cr.cost.estimate_mlp([D, 2 * D], B, optimizer="adam", input_requires_grad=True)
    cr.manual_seed(0)
    model = cr.models.MLP([D, 2 * D])
    x = cr.tensor(np.random.default_rng(0).standard_normal((B, D)), requires_grad=True)  # dL/dx too
    y = np.zeros(B, dtype=np.int64)
    meas = cr.cost.measure(model, x, y, F.cross_entropy, cr.optim.Adam(model.parameters()))
    e, m = est.as_dict()["compute"], meas.flops
    row = dict(D=D, B=B, lecture=est.as_dict()["lecture"], formulas=lecture_formulas(D, B),
               est_fwd_macs=e["forward_macs"], meas_fwd_macs=m["forward"]["macs"],
               est_bwd_macs=e["backward_input_macs"] + e["backward_weight_macs"], meas_bwd_macs=m["backward"]["macs"],
               est_training_bytes=est.as_dict()["memory_bytes"]["training_total"],
               meas_training_bytes=meas.training_peak["total"])
    return est, meas, row


def main(quick=False):
    B, rows = 32, []
    for D in (64,) if quick else (64, 256, 1024):
        est, meas, row = one_network(D, B)
        rows.append(row)
    print(est.lecture_text())                                  # the largest network's derivation
    print(meas.table())
    print(f"\n{'D':>5} {'params':>10} {'fwd MACs est':>13} {'measured':>11} {'bwd MACs est':>13} {'measured':>11}"
          f" {'train mem est':>14} {'measured':>10}")
    for r in rows:
        print(f"{r['D']:>5} {r['lecture']['parameters']:>10,} {r['est_fwd_macs']:>13,} {r['meas_fwd_macs']:>11,}"
              f" {r['est_bwd_macs']:>13,} {r['meas_bwd_macs']:>11,} {cr.cost.human_bytes(r['est_training_bytes']):>14}"
              f" {cr.cost.human_bytes(r['meas_training_bytes']):>10}")
    return dict(rows=rows)


if __name__ == "__main__":
    main()
