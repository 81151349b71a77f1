"""Beyond the MLP: a GRU on MNIST-1D, the recurrent row of the paper's table.

MNIST-1D (Greydanus 2020; the ``mnist1d`` package generates it offline): 4,000 train / 1,000 test
signals of 40 samples, 10 classes. The paper's test accuracies: logistic regression 32%, MLP 68%,
CNN 94%, GRU 91%, human 96%. Here each signal is read as a sequence of 40 steps of one value,
h_t = GRU(x_t, h_{t-1}) with PyTorch's equations
    r = s(W_ir x + b_ir + W_hr h + b_hr),  z = s(W_iz x + b_iz + W_hz h + b_hz),
    n = tanh(W_in x + b_in + r * (W_hn h + b_hn)),  h' = (1 - z) n + z h,
and the logits are a linear map of all 40 states (``cr.models.GRUClassifier``, readout='all').
Recipe: hidden 32, Adam lr 1e-2 halved every 8 epochs, batch 100, 20 epochs; about a minute on 2
CPU cores. The same model from the command line: ``chainrule train --data mnist1d --model gru``.
"""

import time

import numpy as np

import chainrule as cr


def main(quick: bool = False) -> dict:
    d = cr.datasets.make_mnist1d()
    cr.manual_seed(0)
    model = cr.models.GRUClassifier(n_features=40, n_classes=10, hidden_size=32)
    opt = cr.optim.Adam(model.parameters(), lr=1e-2)
    sched = cr.optim.lr_scheduler.StepLR(opt, step_size=8, gamma=0.5)
    epochs = 6 if quick else 20
    t0 = time.perf_counter()
    hist = cr.fit(model, "cross_entropy", opt, (d.X_train, d.y_train), val=(d.X_test, d.y_test), epochs=epochs,
                  batch_size=100, scheduler=sched, seed=0, progress=False)
    seconds = time.perf_counter() - t0
    test_acc = float(np.mean(model.predict(d.X_test) == d.y_test))
    train_acc = float(np.mean(model.predict(d.X_train) == d.y_train))
    print(f"GRU(1 -> {model.rnn.hidden_size}) + Linear({model.head.in_features} -> 10): "
          f"{model.num_parameters():,} parameters, {epochs} epochs in {seconds:.0f} s")
    print(f"train accuracy {train_acc:.1%}, test accuracy {test_acc:.1%} (paper: GRU 91%, CNN 94%, MLP 68%)")
    return {"test_acc": test_acc, "train_acc": train_acc, "val_acc": hist["val_accuracy"], "seconds": seconds,
            "parameters": model.num_parameters()}


if __name__ == "__main__":
    main()
