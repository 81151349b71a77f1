# Basics "Automatic differentiation with torch.autograd": a one-layer logistic model, grad_fn, .grad, no_grad,
# detach, and the Jacobian-vector product with backward(gradient) and retain_graph.
# Weights: torch.randn replaced by NumPy draws (same in both runs).
import numpy as np
import torch
from _offline import result

rng = np.random.default_rng(0)
x = torch.ones(5)  # input tensor
y = torch.zeros(3)  # expected output
w = torch.tensor(rng.standard_normal((5, 3)), dtype=torch.float32, requires_grad=True)
b = torch.tensor(rng.standard_normal(3), dtype=torch.float32, requires_grad=True)
z = torch.matmul(x, w)+b
loss = torch.nn.functional.binary_cross_entropy_with_logits(z, y)

print(f"Gradient function for z = {z.grad_fn}")
print(f"Gradient function for loss = {loss.grad_fn}")
result("grad_fn", z.grad_fn is not None, loss.grad_fn is not None, x.grad_fn is None, w.is_leaf, z.is_leaf)

loss.backward()
print(w.grad)
print(b.grad)
result("w_grad", *w.grad.flatten().tolist())
result("b_grad", *b.grad.tolist())
result("loss", loss.item())

z = torch.matmul(x, w)+b
print(z.requires_grad)
with torch.no_grad():
    z = torch.matmul(x, w)+b
print(z.requires_grad)
z_det = (torch.matmul(x, w)+b).detach()
result("no_grad", z.requires_grad, z_det.requires_grad)

inp = torch.eye(4, 5, requires_grad=True)
out = (inp+1).pow(2).t()
out.backward(torch.ones_like(out), retain_graph=True)
print(f"First call\n{inp.grad}")
result("jvp_first", *inp.grad.flatten().tolist())
out.backward(torch.ones_like(out), retain_graph=True)
print(f"\nSecond call\n{inp.grad}")
result("jvp_second", *inp.grad.flatten().tolist())
inp.grad.zero_()
out.backward(torch.ones_like(out), retain_graph=True)
print(f"\nCall after zeroing gradients\n{inp.grad}")
result("jvp_zeroed", *inp.grad.flatten().tolist())
