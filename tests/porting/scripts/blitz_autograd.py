# 60-minute blitz "A Gentle Introduction to torch.autograd": Q = 3a^3 - b^2 with Q.backward(gradient=external_grad),
# requires_grad propagation, and finetuning with frozen parameters (an MLP stands in for resnet18: only the new
# classifier head trains; the optimizer is still given every parameter, as in the tutorial).
# Inputs and weights: from NumPy (same in both runs).
import numpy as np
import torch
from _offline import result, set_weights
from torch import nn, optim

a = torch.tensor([2., 3.], requires_grad=True)
b = torch.tensor([6., 4.], requires_grad=True)
Q = 3*a**3 - b**2
external_grad = torch.tensor([1., 1.])
Q.backward(gradient=external_grad)

# check if collected gradients are correct
print(9*a**2 == a.grad)
print(-2*b == b.grad)
result("Q", *Q.tolist())
result("grads", *a.grad.tolist(), *b.grad.tolist(), bool((9*a**2 == a.grad).all()), bool((-2*b == b.grad).all()))

rng = np.random.default_rng(0)
x = torch.from_numpy(rng.random((5, 5), dtype=np.float32))
y = torch.from_numpy(rng.random((5, 5), dtype=np.float32))
z = torch.from_numpy(rng.random((5, 5), dtype=np.float32)).requires_grad_(True)
a = x + y
print(f"Does `a` require gradients?: {a.requires_grad}")
b = x + z
print(f"Does `b` require gradients?: {b.requires_grad}")
result("requires_grad", a.requires_grad, b.requires_grad)

model = set_weights(torch, nn.Sequential(nn.Flatten(), nn.Linear(48, 32), nn.ReLU(), nn.Linear(32, 1000)))

# Freeze all the parameters in the network
for param in model.parameters():
    param.requires_grad = False

model[3] = nn.Linear(32, 10)
set_weights(torch, model[3], seed=5)
frozen_before = model[1].weight.clone()

# Optimize only the classifier
optimizer = optim.SGD(model.parameters(), lr=1e-2, momentum=0.9)

images = torch.from_numpy(rng.random((4, 3, 4, 4), dtype=np.float32))
labels = torch.tensor([1, 0, 3, 9])
for step in range(5):
    prediction = model(images)
    loss = nn.functional.cross_entropy(prediction, labels)
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
    result(f"finetune_{step}", loss.item())
result("frozen", bool((model[1].weight == frozen_before).all()), model[1].weight.grad is None,
       model[3].weight.grad is not None, sum(p.requires_grad for p in model.parameters()))
