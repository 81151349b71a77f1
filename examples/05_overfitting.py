"""Lecture: preventing overfitting: early stopping, weight regularization, dropout.

A too-large MLP (64 -> 256 -> 256 -> 10, 85K parameters) on 100 digits memorises its training set. Early
stopping (the best validation epoch's weights), L2 (lam/2 sum_l ||W_l||_F^2) and dropout (p = 0.5) each
shrink the train-validation gap. Curves go to overfitting.png (or ``out``).
"""

import chainrule as cr

SIZES = [64, 256, 256, 10]


def run(name, Xtr, ytr, Xva, yva, epochs):
    cr.manual_seed(0)
    model = cr.models.MLP(SIZES, dropout=0.5 if name == "dropout" else 0.0)
    penalty = (lambda: cr.nn.l2_penalty(model, 1e-2)) if name == "L2" else None
    stop = [cr.train.EarlyStopping(patience=3)] if name == "early stopping" else []
    opt = cr.optim.Adam(model.parameters(), lr=1e-3)
    hist = cr.fit(model, "cross_entropy", opt, (Xtr, ytr), val=(Xva, yva), epochs=epochs, batch_size=20,
                  callbacks=stop, penalty=penalty, seed=0, progress=False)
    tr, va = (cr.evaluate(model, "cross_entropy", d) for d in ((Xtr, ytr), (Xva, yva)))  # data loss, no penalty
    return hist, dict(train_loss=tr["loss"], val_loss=va["loss"], gap=va["loss"] - tr["loss"],
                      train_acc=tr["accuracy"], val_acc=va["accuracy"], epochs=len(hist))


def main(quick=False, out="."):
    ds = cr.datasets.load_digits()
    n_train, n_val = 100, 200 if quick else 360         # a small training set: easy to memorise
    Xtr, ytr = ds.X_train[:n_train] / 16, ds.y_train[:n_train]   # pixels 0..16 -> 0..1
    Xva, yva = ds.X_test[:n_val] / 16, ds.y_test[:n_val]
    histories, results = {}, {}
    for name in ("no regularization", "early stopping", "L2", "dropout"):
        histories[name], results[name] = run(name, Xtr, ytr, Xva, yva, epochs=20 if quick else 60)
        r = results[name]
        print(f"{name:<18} epochs {r['epochs']:3d}  train loss {r['train_loss']:.3f} acc {r['train_acc']:.3f}"
              f"  val loss {r['val_loss']:.3f} acc {r['val_acc']:.3f}  gap {r['gap']:.3f}")
    results["figure"] = cr.history.plot_runs(histories, f"{out}/05_overfitting.png")   # train and val loss, per run
    best = min((k for k in results if k != "figure"), key=lambda k: results[k]["gap"])
    print(f"smallest train-validation gap: {best}; curves in {results['figure']}")
    return results


if __name__ == "__main__":
    import argparse
    cli = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    cli.add_argument("--out", default=".", help="directory for the figure (default: the current directory)")
    cli.add_argument("--quick", action="store_true", help="a few seconds instead of the guide's full run")
    main(**vars(cli.parse_args()))
