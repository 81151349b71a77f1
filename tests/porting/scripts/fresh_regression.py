# Fresh (issue 15 audit): regression with TensorDataset, random_split(generator=torch.Generator().manual_seed(0)),
# two parameter groups with their own lr, ExponentialLR and CosineAnnealingLR stepped together, ReduceLROnPlateau,
# the optimizer's state_dict keys. Data and weights: NumPy (same in both runs); the loader does not shuffle.
import numpy as np
import torch
from torch import nn, optim
from torch.utils.data import DataLoader, TensorDataset, random_split

rng = np.random.default_rng(3)
X = torch.from_numpy(rng.standard_normal((200, 5)).astype(np.float32))
true_w = torch.tensor([[1.0], [-2.0], [0.5], [0.0], [3.0]])
y = X @ true_w + 0.1
ds = TensorDataset(X, y)
train, val = random_split(ds, [160, 40], generator=torch.Generator().manual_seed(0))
print("RESULT split", len(train), len(val))
loader = DataLoader(ds, batch_size=50)
model = nn.Sequential(nn.Linear(5, 16), nn.ReLU(), nn.Linear(16, 1))
with torch.no_grad():
    for p in model.parameters():
        p.copy_(torch.from_numpy(rng.uniform(-0.3, 0.3, tuple(p.shape)).astype(np.float32)))
opt = optim.SGD([{"params": model[0].parameters(), "lr": 0.05},
                 {"params": model[2].parameters()}], lr=0.01, momentum=0.5)
sched = optim.lr_scheduler.ExponentialLR(opt, gamma=0.9)
cos = optim.lr_scheduler.CosineAnnealingLR(opt, T_max=10)
loss_fn = nn.MSELoss()
for epoch in range(5):
    tot = 0.0
    for xb, yb in loader:
        opt.zero_grad()
        loss = loss_fn(model(xb), yb)
        loss.backward()
        opt.step()
        tot += loss.item()
    sched.step()
    cos.step()
    print("RESULT ep", tot / len(loader), *[g["lr"] for g in opt.param_groups])
model.eval()
with torch.no_grad():
    pred = model(X)
    print("RESULT mse", torch.mean((pred - y) ** 2).item(), pred.shape[0], pred.squeeze(-1).shape[0])
plateau = optim.lr_scheduler.ReduceLROnPlateau(opt, mode="min", factor=0.5, patience=0)
for v in [1.0, 2.0, 3.0]:
    plateau.step(v)
print("RESULT plateau", *[g["lr"] for g in opt.param_groups])
print("RESULT opt_sd", *sorted(opt.state_dict().keys()), len(opt.state_dict()["param_groups"]))
