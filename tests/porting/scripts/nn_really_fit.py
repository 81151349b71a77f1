# "What is torch.nn really?" part 4: validation, loss_batch/fit/get_data, the DataLoaders of the tutorial
# (train shuffled, valid at bs * 2), up to (not including) the switch to Conv2d.
# Data: digits upscaled to 28x28, flattened. Weights: set from NumPy. The shuffled train order depends on the RNG,
# so the validation losses are compared loosely; both runs are seeded, so each is reproducible. Everything before
# training is exact. Over seeds 0-7 (measured): torch 0.27-0.37 / 0.19-0.27 / 0.17-0.22 after epochs 1/2/3,
# chainrule 0.30-0.39 / 0.19-0.23 / 0.16-0.20: rtol=0.4.
# porting: loose=val_loss_0,val_loss_1,val_loss_2 loose_rtol=0.4
import numpy as np
import torch
import torch.nn.functional as F
from _offline import digits28, result, set_weights
from torch import nn, optim
from torch.utils.data import DataLoader, TensorDataset

torch.manual_seed(0)  # each library's run is then reproducible; the two generators still differ, hence loose

x_train, y_train, x_valid, y_valid = digits28(n_train=1000, n_valid=500)
x_train, y_train, x_valid, y_valid = map(
    torch.tensor, (x_train.reshape(-1, 784), y_train, x_valid.reshape(-1, 784), y_valid)
)
bs, lr = 64, 0.1
loss_func = F.cross_entropy
train_ds = TensorDataset(x_train, y_train)
valid_ds = TensorDataset(x_valid, y_valid)


def get_model():
    model = set_weights(torch, nn.Sequential(nn.Linear(784, 10)))
    return model, optim.SGD(model.parameters(), lr=lr, momentum=0.9)


def loss_batch(model, loss_func, xb, yb, opt=None):
    loss = loss_func(model(xb), yb)

    if opt is not None:
        loss.backward()
        opt.step()
        opt.zero_grad()

    return loss.item(), len(xb)


def fit(epochs, model, loss_func, opt, train_dl, valid_dl):
    for epoch in range(epochs):
        model.train()
        for xb, yb in train_dl:
            loss_batch(model, loss_func, xb, yb, opt)

        model.eval()
        with torch.no_grad():
            losses, nums = zip(
                *[loss_batch(model, loss_func, xb, yb) for xb, yb in valid_dl]
            )
        val_loss = np.sum(np.multiply(losses, nums)) / np.sum(nums)

        print(epoch, val_loss)
        result(f"val_loss_{epoch}", val_loss)


def get_data(train_ds, valid_ds, bs):
    return (
        DataLoader(train_ds, batch_size=bs, shuffle=True),
        DataLoader(valid_ds, batch_size=bs * 2),
    )


train_dl, valid_dl = get_data(train_ds, valid_ds, bs)
model, opt = get_model()
with torch.no_grad():
    losses, nums = zip(*[loss_batch(model, loss_func, xb, yb) for xb, yb in valid_dl])
result("val_loss_before", np.sum(np.multiply(losses, nums)) / np.sum(nums))
result("batches", len(train_dl), len(valid_dl), *nums)
fit(3, model, loss_func, opt, train_dl, valid_dl)
