# Fresh (issue 15 audit): the nn.Module API: a residual Block in a ModuleList, model.apply(init_fn), state_dict
# keys, named_parameters, children/modules, every loss with reduction='mean'/'sum'/'none', SmoothL1/Huber/BCE,
# Adam with clip_grad_norm_, load_state_dict of cloned tensors, train()/eval(), nn.init schemes, repr.
import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F


class Block(nn.Module):
    def __init__(self, d):
        super().__init__()
        self.lin = nn.Linear(d, d)
        self.act = nn.Tanh()

    def forward(self, x):
        return x + self.act(self.lin(x))


class Model(nn.Module):
    def __init__(self):
        super().__init__()
        self.inp = nn.Linear(4, 8, bias=True)
        self.blocks = nn.ModuleList([Block(8) for _ in range(2)])
        self.head = nn.Sequential(nn.LeakyReLU(0.1), nn.Linear(8, 2))

    def forward(self, x):
        x = self.inp(x)
        for b in self.blocks:
            x = b(x)
        return self.head(x)


def init_weights(m):
    if isinstance(m, nn.Linear):
        nn.init.constant_(m.weight, 0.05)
        nn.init.constant_(m.bias, -0.01)


torch.manual_seed(0)
model = Model()
model.apply(init_weights)
print("RESULT keys", *model.state_dict().keys())
print("RESULT names", *[n for n, _ in model.named_parameters()])
print("RESULT nchildren", len(list(model.children())), len(list(model.modules())))
x = torch.tensor(np.linspace(-1, 1, 20, dtype=np.float32).reshape(5, 4))
yt = torch.tensor([0, 1, 1, 0, 1])
out = model(x)
for red in ("mean", "sum", "none"):
    l = F.cross_entropy(out, yt, reduction=red)
    print("RESULT ce_" + red, *l.detach().reshape(-1).tolist())
    l2 = nn.MSELoss(reduction=red)(out, torch.zeros_like(out))
    print("RESULT mse_" + red, *l2.detach().reshape(-1).tolist())
    l3 = nn.L1Loss(reduction=red)(out, torch.ones_like(out))
    print("RESULT l1_" + red, *l3.detach().reshape(-1).tolist())
    l4 = nn.BCEWithLogitsLoss(reduction=red)(out[:, 0], yt.float())
    print("RESULT bce_" + red, *l4.detach().reshape(-1).tolist())
    l5 = F.nll_loss(F.log_softmax(out, dim=1), yt, reduction=red)
    print("RESULT nll_" + red, *l5.detach().reshape(-1).tolist())
print("RESULT huber", nn.SmoothL1Loss()(out, torch.zeros_like(out)).item(),
      nn.HuberLoss(delta=0.5)(out, torch.ones_like(out)).item())
print("RESULT bce", nn.BCELoss()(torch.sigmoid(out[:, 1]), yt.float()).item())
loss = F.cross_entropy(out, yt)
loss.backward()
print("RESULT grad", *model.inp.weight.grad.reshape(-1).tolist())
opt = torch.optim.Adam(model.parameters(), lr=1e-2, betas=(0.9, 0.99))
for _ in range(3):
    opt.zero_grad(set_to_none=True)
    F.cross_entropy(model(x), yt).backward()
    nn.utils.clip_grad_norm_(model.parameters(), max_norm=0.5)
    opt.step()
print("RESULT after", F.cross_entropy(model(x), yt).item())
sd = {k: v.clone() for k, v in model.state_dict().items()}
m2 = Model()
m2.load_state_dict(sd)
print("RESULT eq", torch.allclose(m2(x), model(x)))
print("RESULT training", model.training, model.eval().training, model.train().training)
nn.init.kaiming_uniform_(m2.inp.weight, nonlinearity="relu")
nn.init.xavier_normal_(m2.head[1].weight)
nn.init.normal_(m2.inp.bias, mean=0.0, std=0.02)
nn.init.uniform_(m2.head[1].bias, -0.1, 0.1)
print("RESULT init_shapes", *m2.inp.weight.shape, *m2.head[1].weight.shape)
print("RESULT repr_has", "Linear(in_features=4, out_features=8, bias=True)" in repr(model))
