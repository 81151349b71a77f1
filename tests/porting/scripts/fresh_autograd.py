# Fresh (issue 15 audit): autograd idioms: requires_grad_(), detach().clone(), torch.autograd.grad with
# create_graph (second derivatives), @torch.no_grad() on a function, inference_mode, set_grad_enabled,
# enable_grad, gradient accumulation over two backward calls, freezing a weight, torch.Generator, manual_seed.
import torch
import torch.nn as nn

g = torch.Generator().manual_seed(0)
a = torch.linspace(-2, 2, 9).requires_grad_()
b = (a * 2).detach().clone()
print("RESULT detach", b.requires_grad, a.requires_grad, a.is_leaf)

y = (a.sigmoid() * a.tanh() + a.relu() ** 2).sum()
(ga,) = torch.autograd.grad(y, a, create_graph=True)
print("RESULT grad", *ga.tolist())
(gga,) = torch.autograd.grad(ga.sum(), a)
print("RESULT grad2", *gga.tolist())


@torch.no_grad()
def evaluate(t):
    return t * 3


print("RESULT no_grad_dec", evaluate(a).requires_grad, torch.is_grad_enabled())
with torch.inference_mode():
    c = a * 2
print("RESULT inference", c.requires_grad)
with torch.set_grad_enabled(False):
    d = a * 2
print("RESULT set_grad", d.requires_grad)
with torch.enable_grad():
    e = a * 2
print("RESULT enable", e.requires_grad)

x = torch.ones(3, requires_grad=True)
w = torch.tensor([1.0, 2.0, 3.0], requires_grad=True)
out = (x * w).sum()
out.backward(retain_graph=True)
out.backward()
print("RESULT accum", *w.grad.tolist(), *x.grad.tolist())
w.grad.zero_()
x.grad = None
lin = nn.Linear(3, 1)
lin.weight.requires_grad_(False)
print("RESULT frozen", lin.weight.requires_grad, lin.bias.requires_grad)
print("RESULT trainable", sum(p.numel() for p in lin.parameters() if p.requires_grad))
z = torch.tensor([1.0, 2.0], requires_grad=True)
loss = (z ** 2).mean()
loss.backward()
print("RESULT z", *z.grad.tolist(), loss.item())
h = torch.randn(3, 4, generator=g)
print("RESULT gen_shape", *h.shape, h.dtype)
print("RESULT randint", torch.randint(0, 5, (3,), generator=g).dtype)
torch.manual_seed(42)
q = torch.rand(2, 2)
torch.manual_seed(42)
print("RESULT seed_repro", torch.equal(q, torch.rand(2, 2)))
s = torch.tensor(3.0, requires_grad=True)
t = s * s

(t * 2).backward()
print("RESULT sgrad", s.grad.item())
