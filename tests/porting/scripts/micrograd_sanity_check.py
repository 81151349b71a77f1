# micrograd's test/test_engine.py::test_sanity_check, the torch half (the reference micrograd checks itself against).
# Nothing random.
import torch
from _offline import result

x = torch.Tensor([-4.0]).double()
x.requires_grad = True
z = 2 * x + 2 + x
q = z.relu() + z * x
h = (z * z).relu()
y = h + q + q * x
y.backward()
xpt, ypt = x, y

result("forward", ypt.data.item())
result("backward", xpt.grad.item())
result("dtype", str(x.dtype))
