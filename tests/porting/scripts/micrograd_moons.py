# micrograd's demo.ipynb written with torch: make_moons(100, noise=0.1), MLP 2-16-16-1 with ReLU, the SVM max-margin
# loss built from Python lists and sum() of tensors, L2 regularisation, decaying learning rate, p.data -= lr * p.grad.
# Data: scikit-learn's make_moons (offline, seeded). Weights: micrograd's uniform(-1, 1) init drawn with NumPy
# (same in both runs). 60 steps instead of 100.
import numpy as np
import torch
import torch.nn as nn
from _offline import result
from sklearn.datasets import make_moons

np.random.seed(1337)
X, y = make_moons(n_samples=100, noise=0.1)
y = y*2 - 1  # make y be -1 or 1
X, y = torch.tensor(X, dtype=torch.float32), torch.tensor(y, dtype=torch.float32)

model = nn.Sequential(nn.Linear(2, 16), nn.ReLU(), nn.Linear(16, 16), nn.ReLU(), nn.Linear(16, 1))
with torch.no_grad():
    for p in model.parameters():
        p.copy_(torch.from_numpy(np.random.uniform(-1, 1, tuple(p.shape)).astype(np.float32)))
print(model)
print("number of parameters", sum(p.numel() for p in model.parameters()))


# loss function
def loss(batch_size=None):
    Xb, yb = X, y
    inputs = [xrow for xrow in Xb]

    # forward the model to get scores
    scores = list(map(model, inputs))

    # svm "max-margin" loss
    losses = [(1 + -yi*scorei).relu() for yi, scorei in zip(yb, scores)]
    data_loss = sum(losses) * (1.0 / len(losses))
    # L2 regularization
    alpha = 1e-4
    reg_loss = alpha * sum((p*p).sum() for p in model.parameters())
    total_loss = data_loss + reg_loss

    # also get accuracy
    accuracy = [(yi > 0) == (scorei.data > 0) for yi, scorei in zip(yb, scores)]
    return total_loss, sum(accuracy) / len(accuracy)


total_loss, acc = loss()
print(total_loss, acc)
result("initial", total_loss.item(), acc.item())

for k in range(60):

    # forward
    total_loss, acc = loss()

    # backward
    model.zero_grad()
    total_loss.backward()

    # update (sgd)
    learning_rate = 1.0 - 0.9*k/100
    for p in model.parameters():
        p.data -= learning_rate * p.grad

    if k % 5 == 0:
        print(f"step {k} loss {total_loss.data}, accuracy {acc.item()*100}%")
        result(f"step_{k}", total_loss.item(), acc.item())
