# micrograd's test_more_ops as written for micrograd's Value (c += c + 1 ...), run on torch tensors: in-place
# updates of non-leaf tensors that require grad, which torch allows when no saved value is overwritten.
# Nothing random.
import torch
from _offline import result

a = torch.Tensor([-4.0]).double()
b = torch.Tensor([2.0]).double()
a.requires_grad = True
b.requires_grad = True
c = a + b
d = a * b + b**3
c += c + 1
c += 1 + c + (-a)
d += d * 2 + (b + a).relu()
d += 3 * d + (b - a).relu()
e = c - d
f = e**2
g = f / 2.0
g += 10.0 / f
g.backward()

result("forward", g.data.item())
result("backward", a.grad.item(), b.grad.item())
print('{:+.2f}'.format(g.data.item()), '{:+.2f}'.format(a.grad[0]))
result("formatted", '{:+.2f}'.format(g[0]), '{:+.4f}'.format(a.grad[0]))
