# Fresh (issue 15 audit): a typical classifier loop written as a new user would: a map-style Dataset subclass,
# DataLoader, an nn.Module with forward, nn.init, SGD with momentum and weight decay, StepLR, model.eval() under
# no_grad, softmax(dim=-1), torch.save/torch.load of a state_dict, torch.allclose, editing param_groups' lr.
# Data and weights: NumPy arrays (same in both runs); no shuffling, so every number is compared exactly.
import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.utils.data import DataLoader, Dataset

torch.manual_seed(0)
rng = np.random.default_rng(0)
X = rng.standard_normal((256, 20)).astype(np.float32)
w = rng.standard_normal((20, 3)).astype(np.float32)
y = (X @ w).argmax(1)


class MyData(Dataset):
    def __init__(self, x, y):
        self.x = torch.tensor(x)
        self.y = torch.tensor(y, dtype=torch.long)

    def __len__(self):
        return len(self.x)

    def __getitem__(self, i):
        return self.x[i], self.y[i]


class Net(nn.Module):
    def __init__(self, d_in, d_hidden, d_out):
        super().__init__()
        self.fc1 = nn.Linear(d_in, d_hidden)
        self.fc2 = nn.Linear(d_hidden, d_out)
        self.drop = nn.Dropout(0.0)
        for m in self.modules():
            if isinstance(m, nn.Linear):
                nn.init.zeros_(m.bias)
        g = np.random.default_rng(1)
        with torch.no_grad():
            self.fc1.weight.copy_(torch.from_numpy(g.standard_normal((d_hidden, d_in)).astype(np.float32) * 0.1))
            self.fc2.weight.copy_(torch.from_numpy(g.standard_normal((d_out, d_hidden)).astype(np.float32) * 0.1))

    def forward(self, x):
        x = F.relu(self.fc1(x))
        x = self.drop(x)
        return self.fc2(x)


device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
model = Net(20, 32, 3).to(device)
ds = MyData(X, y)
loader = DataLoader(ds, batch_size=32, shuffle=False)
opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=1e-4)
sched = torch.optim.lr_scheduler.StepLR(opt, step_size=2, gamma=0.5)
criterion = nn.CrossEntropyLoss(reduction="mean")

for epoch in range(4):
    model.train()
    running = 0.0
    for xb, yb in loader:
        xb, yb = xb.to(device), yb.to(device)
        opt.zero_grad()
        out = model(xb)
        loss = criterion(out, yb)
        loss.backward()
        opt.step()
        running += loss.item() * xb.size(0)
    sched.step()
    print("RESULT epoch_loss", running / len(ds), opt.param_groups[0]["lr"])
    print("RESULT last_lr", sched.get_last_lr()[0])

model.eval()
with torch.no_grad():
    logits = model(ds.x)
    pred = logits.argmax(dim=1)
    acc = (pred == ds.y).float().mean().item()
    probs = F.softmax(logits, dim=-1)
print("RESULT acc", acc)
print("RESULT probs_sum", probs.sum(dim=1).mean().item(), probs.max().item())

torch.save(model.state_dict(), "model.pt")
model2 = Net(20, 32, 3)
model2.load_state_dict(torch.load("model.pt"))
model2.eval()
with torch.no_grad():
    print("RESULT reload_same", torch.allclose(model2(ds.x), logits))
for g in opt.param_groups:
    g["lr"] = 0.01
print("RESULT lr_now", opt.param_groups[0]["lr"])
print("RESULT nparams", sum(p.numel() for p in model.parameters() if p.requires_grad))
