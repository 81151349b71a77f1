# "What is torch.nn really?" part 3: nn.Linear, torch.optim.SGD, get_model(), TensorDataset, then
# DataLoader(train_ds, batch_size=bs) without shuffling (the section before "Add validation").
# Data: digits upscaled to 28x28, flattened. Weights: set from NumPy after get_model() (same in both runs).
import torch
import torch.nn.functional as F
from _offline import digits28, result, set_weights
from torch import nn, optim
from torch.utils.data import DataLoader, TensorDataset

x_train, y_train, x_valid, y_valid = digits28(n_train=1000, n_valid=500)
x_train, y_train, x_valid, y_valid = map(
    torch.tensor, (x_train.reshape(-1, 784), y_train, x_valid.reshape(-1, 784), y_valid)
)
n, c = x_train.shape
bs, lr, epochs = 64, 0.5, 2
loss_func = F.cross_entropy


class Mnist_Logistic(nn.Module):
    def __init__(self):
        super().__init__()
        self.lin = nn.Linear(784, 10)

    def forward(self, xb):
        return self.lin(xb)


def get_model():
    model = set_weights(torch, Mnist_Logistic())
    return model, optim.SGD(model.parameters(), lr=lr)


model, opt = get_model()
xb, yb = x_train[0:bs], y_train[0:bs]
print(loss_func(model(xb), yb))
result("before", loss_func(model(xb), yb).item())

# manual slices and opt.step()
for epoch in range(epochs):
    for i in range((n - 1) // bs + 1):
        start_i = i * bs
        end_i = start_i + bs
        xb = x_train[start_i:end_i]
        yb = y_train[start_i:end_i]
        pred = model(xb)
        loss = loss_func(pred, yb)

        loss.backward()
        opt.step()
        opt.zero_grad()
    result(f"slices_epoch_{epoch}", loss.item())

# the same with a TensorDataset
model, opt = get_model()
train_ds = TensorDataset(x_train, y_train)
for epoch in range(epochs):
    for i in range((n - 1) // bs + 1):
        xb, yb = train_ds[i * bs: i * bs + bs]
        pred = model(xb)
        loss = loss_func(pred, yb)
        loss.backward()
        opt.step()
        opt.zero_grad()
    result(f"dataset_epoch_{epoch}", loss.item())

# and with a DataLoader
model, opt = get_model()
train_dl = DataLoader(train_ds, batch_size=bs)
for epoch in range(epochs):
    for xb, yb in train_dl:
        pred = model(xb)
        loss = loss_func(pred, yb)
        loss.backward()
        opt.step()
        opt.zero_grad()
    result(f"dataloader_epoch_{epoch}", loss.item())

print(loss_func(model(xb), yb))
result("after", loss_func(model(xb), yb).item(), len(train_dl))
result("weight_sum", model.lin.weight.sum().item())
