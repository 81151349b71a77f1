# "What is torch.nn really?" part 1: logistic regression on MNIST from scratch: manual weights, a hand-written
# log_softmax and nll, accuracy, and `weights -= weights.grad * lr` under torch.no_grad().
# Data: digits upscaled to 28x28 and flattened to 784 (MNIST's shape). Weights: the tutorial's
# torch.randn(784, 10) / math.sqrt(784) drawn with NumPy instead (same in both runs).
import math

import numpy as np
import torch
from _offline import digits28, result

x_train, y_train, x_valid, y_valid = digits28(n_train=1000, n_valid=500)
x_train, x_valid = x_train.reshape(-1, 784), x_valid.reshape(-1, 784)
x_train, y_train, x_valid, y_valid = map(
    torch.tensor, (x_train, y_train, x_valid, y_valid)
)
n, c = x_train.shape
print(x_train, y_train)
print(x_train.shape)
print(y_train.min(), y_train.max())
result("data", n, c, y_train.min().item(), y_train.max().item(), str(x_train.dtype), str(y_train.dtype))

weights = torch.from_numpy(np.random.default_rng(0).standard_normal((784, 10)).astype(np.float32)) / math.sqrt(784)
weights.requires_grad_()
bias = torch.zeros(10, requires_grad=True)


def log_softmax(x):
    return x - x.exp().sum(-1).log().unsqueeze(-1)


def model(xb):
    return log_softmax(xb @ weights + bias)


bs = 64  # batch size

xb = x_train[0:bs]  # a mini-batch from x
preds = model(xb)  # predictions
preds[0], preds.shape
print(preds[0], preds.shape)


def nll(input, target):
    return -input[range(target.shape[0]), target].mean()


loss_func = nll

yb = y_train[0:bs]
print(loss_func(preds, yb))


def accuracy(out, yb):
    preds = torch.argmax(out, dim=1)
    return (preds == yb).float().mean()


print(accuracy(preds, yb))
result("before", loss_func(preds, yb).item(), accuracy(preds, yb).item())

lr = 0.5  # learning rate
epochs = 2  # how many epochs to train for

for epoch in range(epochs):
    for i in range((n - 1) // bs + 1):
        start_i = i * bs
        end_i = start_i + bs
        xb = x_train[start_i:end_i]
        yb = y_train[start_i:end_i]
        pred = model(xb)
        loss = loss_func(pred, yb)

        loss.backward()
        with torch.no_grad():
            weights -= weights.grad * lr
            bias -= bias.grad * lr
            weights.grad.zero_()
            bias.grad.zero_()
    result(f"epoch_{epoch}_last_batch_loss", loss.item())

print(loss_func(model(xb), yb), accuracy(model(xb), yb))
result("after", loss_func(model(xb), yb).item(), accuracy(model(xb), yb).item())
result("valid", loss_func(model(x_valid), y_valid).item(), accuracy(model(x_valid), y_valid).item())
