"""Lecture: logistic regression and multi-class (softmax) logistic regression.

P(y = 1 | x) = sigma(w^T x) on breast cancer (binary), P(y = k | x) = softmax(W x)_k on digits
(10 classes), both trained with cr.fit on the cross-entropy loss, and the lecture's
"exponentiate and normalize" table for the scores (-1.1, 2.1, -0.4).
"""

import numpy as np

import chainrule as cr
import chainrule.nn.functional as F

SLIDE_SCORES = (-1.1, 2.1, -0.4)  # the slide's table gives softmax (0.036, 0.89, 0.07)


def standardize(ds):
    mu, sd = ds.X_train.mean(0), ds.X_train.std(0) + 1e-8
    return (ds.X_train - mu) / sd, (ds.X_test - mu) / sd


def softmax_table(scores=SLIDE_SCORES):
    z = cr.tensor(scores)
    e = cr.exp(z)                      # exponentiate ...
    p = e / e.sum()                    # ... and normalize
    print(f"{'score w_k^T phi(x)':>20} {'exp':>8} {'softmax':>8}")
    for k in range(len(scores)):
        print(f"{z.numpy()[k]:>20.1f} {e.numpy()[k]:>8.3f} {p.numpy()[k]:>8.3f}")
    assert np.allclose(p.numpy(), F.softmax(z).numpy(), atol=1e-6)
    return p.numpy()


def train(model, Xtr, ytr, Xte, yte, loss, epochs, lr=0.1):
    cr.manual_seed(0)
    opt = cr.optim.SGD(model.parameters(), lr=lr, momentum=0.9)
    cr.fit(model, loss, opt, (Xtr, ytr), epochs=epochs, batch_size=64, seed=0, progress=False)
    return float((model.predict(Xtr) == ytr).mean()), float((model.predict(Xte) == yte).mean())


def main(quick=False):
    epochs = 10 if quick else 50
    probs = softmax_table()
    bc = cr.datasets.load_breast_cancer()                      # binary: malignant / benign
    Xtr, Xte = standardize(bc)
    cr.manual_seed(0)
    logreg = cr.models.LogisticRegression(bc.n_features)       # sigma(w^T x + b)
    lr_train, lr_test = train(logreg, Xtr, bc.y_train, Xte, bc.y_test, "bce_with_logits", epochs)
    print(f"logistic regression, breast cancer: train {lr_train:.3f}  test {lr_test:.3f}")
    dg = cr.datasets.load_digits()                             # 10 classes, 8x8 images
    Xtr, Xte = dg.X_train / 16, dg.X_test / 16                 # pixels 0..16 -> 0..1
    cr.manual_seed(0)
    softreg = cr.models.SoftmaxRegression(dg.n_features, dg.n_classes)  # softmax(W x + b)
    sm_train, sm_test = train(softreg, Xtr, dg.y_train, Xte, dg.y_test, "cross_entropy", epochs, lr=0.2)
    print(f"softmax regression, digits:         train {sm_train:.3f}  test {sm_test:.3f}")
    p = softreg.predict_proba(Xte[:1])[0]
    print("P(y | x) for the first test digit:", np.round(p, 3), "label", dg.y_test[0])
    return dict(slide_probs=probs, logreg_test_acc=lr_test, softmax_test_acc=sm_test, softmax_row_sum=float(p.sum()))


if __name__ == "__main__":
    main()
