# Fresh (issue 15 audit): PyTorch's "saving and loading a general checkpoint" recipe (a dict of model and
# optimizer state_dicts, epoch and loss through torch.save/torch.load, then resuming), register_buffer, seeding and
# determinism switches (cuda.manual_seed, cudnn flags, set_num_threads, use_deterministic_algorithms,
# set_printoptions), einsum, requires_grad_(False) on a module, F.pad's flat form, torch.where(cond), MultiStepLR.
import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F


def R(name, *v): print("RESULT", name, *v)
torch.manual_seed(0)
torch.cuda.manual_seed(0)
torch.cuda.manual_seed_all(0)
torch.backends.cudnn.deterministic = True
torch.backends.cudnn.benchmark = False
torch.set_num_threads(1)
R("threads", torch.get_num_threads())
torch.use_deterministic_algorithms(True)
torch.set_printoptions(precision=3)

class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(3, 2)
        self.register_buffer("scale", torch.tensor(2.0))
    def forward(self, x):
        return self.fc(x.view(x.size(0), -1)) * self.scale

net = Net()
with torch.no_grad():
    net.fc.weight.copy_(torch.tensor([[0.1, -0.2, 0.3], [0.4, 0.5, -0.6]]))
    net.fc.bias.fill_(0.05)
opt = torch.optim.Adam(net.parameters(), lr=0.01)
x = torch.tensor(np.linspace(-1, 1, 12, dtype=np.float32).reshape(4, 3, 1))
y = torch.tensor([0, 1, 0, 1])
for _ in range(3):
    opt.zero_grad()
    F.cross_entropy(net(x), y).backward()
    opt.step()
torch.save({"model": net.state_dict(), "optimizer": opt.state_dict(), "epoch": 3, "loss": 0.5}, "ckpt.pt")
ck = torch.load("ckpt.pt")
net2 = Net()
net2.load_state_dict(ck["model"])
opt2 = torch.optim.Adam(net2.parameters(), lr=0.01)
opt2.load_state_dict(ck["optimizer"])
R("epoch", ck["epoch"], ck["loss"])
for m, o in ((net, opt), (net2, opt2)):
    o.zero_grad()
    F.cross_entropy(m(x), y).backward()
    o.step()
R("resume", torch.allclose(net.fc.weight, net2.fc.weight), *net2.fc.weight.flatten().tolist())
R("buffers", *[n for n, _ in net.named_buffers()], *net.state_dict().keys())
R("einsum", *torch.einsum("ij,jk->ik", torch.ones(2, 3), torch.ones(3, 2)).flatten().tolist())
net.requires_grad_(False)
R("frozen", all(not p.requires_grad for p in net.parameters()))
R("pad", *F.pad(torch.ones(2, 2), (1, 1)).shape)
R("where1", *[t.tolist() for t in torch.where(torch.tensor([0, 1, 1]) > 0)][0])
R("flatten", *torch.flatten(x, 1).shape)
R("logsm", *torch.log_softmax(x[:, :, 0], dim=1).flatten().tolist())
R("sched_multi")
sch = torch.optim.lr_scheduler.MultiStepLR(opt, milestones=[1, 2], gamma=0.1)
for _ in range(3):
    opt.step(); sch.step()
R("multistep", opt.param_groups[0]["lr"])
