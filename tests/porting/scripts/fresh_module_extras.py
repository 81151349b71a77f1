# Fresh (issue 15 audit): more of what tutorials touch: Sequential(OrderedDict) children by name, zero_grad,
# label_smoothing, named_modules, one_hot, Embedding, BatchNorm1d (train and eval), LayerNorm, add_param_group,
# LambdaLR, random_split by fractions, next(iter(loader)), uniform_, randn_like, randint, normal, bernoulli,
# multinomial, add_(alpha=), reductions with dim=, F.dropout(training=False), .numpy(), .item().
# Random draws are compared by shape or by a property that holds for any generator.
from collections import OrderedDict

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.utils.data import DataLoader, TensorDataset, random_split


def R(name, *v): print("RESULT", name, *v)
torch.manual_seed(0)
x = torch.linspace(-1, 1, 12).reshape(4, 3)
m = nn.Sequential(OrderedDict([("fc1", nn.Linear(3, 5)), ("act", nn.ReLU()), ("fc2", nn.Linear(5, 2))]))
with torch.no_grad():
    for i, p in enumerate(m.parameters()):
        p.copy_(torch.arange(p.numel(), dtype=torch.float32).reshape(p.shape) * 0.1 - 0.2 * i)
R("keys", *m.state_dict().keys())
R("fc1", m.fc1.out_features, m.fc1.in_features, m[0].weight.shape[0])
out = m(x)
R("out", *out.flatten().tolist())
m.zero_grad()
loss = F.cross_entropy(out, torch.tensor([0, 1, 1, 0]), label_smoothing=0.1)
loss.backward()
R("g", *m.fc2.weight.grad.flatten().tolist())
R("named_modules", *[n for n, _ in m.named_modules()])
R("onehot", *F.one_hot(torch.tensor([0, 2]), num_classes=3).flatten().tolist())
emb = nn.Embedding(5, 2)
with torch.no_grad():
    emb.weight.copy_(torch.arange(10.).reshape(5, 2))
R("emb", *emb(torch.tensor([[1, 4]])).flatten().tolist())
bn = nn.BatchNorm1d(3)
R("bn", *bn(x).flatten().tolist())
bn.eval()
R("bn_eval", *bn(x).flatten().tolist(), *bn.running_mean.tolist())
ln = nn.LayerNorm(3)
R("ln", *ln(x).flatten().tolist())
opt = torch.optim.SGD(m.fc1.parameters(), lr=0.1)
opt.add_param_group({"params": m.fc2.parameters(), "lr": 0.01})
R("groups", len(opt.param_groups), opt.param_groups[1]["lr"])
sched = torch.optim.lr_scheduler.LambdaLR(opt, lr_lambda=lambda e: 0.5 ** e)
for _ in range(3):
    opt.step(); sched.step()
R("lambda", *[g["lr"] for g in opt.param_groups])
ds = TensorDataset(x, torch.arange(4))
a, b = random_split(ds, [0.75, 0.25])
R("split", len(a), len(b))
xb, yb = next(iter(DataLoader(ds, batch_size=2)))
R("batch", *xb.shape, *yb.tolist())
t = torch.empty(3, 2).uniform_(-1, 1)
R("uniform", *t.shape, bool((t.abs() <= 1).all()))
R("randn_like", *torch.randn_like(x).shape, torch.randint(0, 10, (5,)).shape[0])
n = torch.normal(0.0, 1.0, size=(2, 3))
R("normal", *n.shape)
R("bern", *torch.bernoulli(torch.ones(3)).tolist())
R("mult", *torch.multinomial(torch.tensor([0.0, 1.0, 0.0]), 2, replacement=True).tolist())
y = x.clone()
y.add_(torch.ones_like(y), alpha=2)
R("add_alpha", *y.flatten().tolist())
R("sigmoid", *torch.sigmoid(x).flatten().tolist(), *torch.exp(x).flatten().tolist())
R("mean_dim", *torch.mean(x, dim=0).tolist(), *x.sum(0, keepdim=True).flatten().tolist())
R("drop", *F.dropout(x, p=0.5, training=False).flatten().tolist())
R("numpy", float(x.numpy().sum()), x.detach().cpu().numpy().shape[0])
R("shape0", x.shape[0], len(x), x.size()[1])
R("item", x[0, 0].item(), int(torch.argmax(x)))
