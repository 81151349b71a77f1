# Basics "Tensors" tutorial: creation, attributes, indexing, joining, arithmetic (incl. out=), in-place ops, NumPy bridge.
# RNG: torch.rand results are used only through shapes and dtypes; all compared values are deterministic.
import numpy as np
import torch
from _offline import result

data = [[1, 2], [3, 4]]
x_data = torch.tensor(data)
np_array = np.array(data)
x_np = torch.from_numpy(np_array)
result("x_data", *x_data.flatten().tolist(), str(x_data.dtype), str(x_np.dtype))

x_ones = torch.ones_like(x_data)  # retains the properties of x_data
print(f"Ones Tensor: \n {x_ones} \n")
x_rand = torch.rand_like(x_data, dtype=torch.float)  # overrides the datatype of x_data
result("like", *x_ones.flatten().tolist(), str(x_rand.dtype), *x_rand.shape, bool(((x_rand >= 0) & (x_rand < 1)).all()))

shape = (2, 3,)
rand_tensor = torch.rand(shape)
ones_tensor = torch.ones(shape)
zeros_tensor = torch.zeros(shape)
result("shapes", *rand_tensor.shape, *ones_tensor.shape, *zeros_tensor.shape, ones_tensor.sum().item())

tensor = torch.rand(3, 4)
print(f"Shape of tensor: {tensor.shape}")
print(f"Datatype of tensor: {tensor.dtype}")
print(f"Device tensor is stored on: {tensor.device}")
result("attributes", *tensor.shape, str(tensor.dtype), str(tensor.device))

if torch.accelerator.is_available():
    tensor = tensor.to(torch.accelerator.current_accelerator())

tensor = torch.ones(4, 4)
print(f"First row: {tensor[0]}")
print(f"First column: {tensor[:, 0]}")
print(f"Last column: {tensor[..., -1]}")
tensor[:, 1] = 0
print(tensor)
result("indexing", *tensor.flatten().tolist())

t1 = torch.cat([tensor, tensor, tensor], dim=1)
result("cat", *t1.shape, *t1[0].tolist())

# This computes the matrix multiplication between two tensors. y1, y2, y3 will have the same value
y1 = tensor @ tensor.T
y2 = tensor.matmul(tensor.T)
y3 = torch.rand_like(y1)
torch.matmul(tensor, tensor.T, out=y3)

# This computes the element-wise product. z1, z2, z3 will have the same value
z1 = tensor * tensor
z2 = tensor.mul(tensor)
z3 = torch.rand_like(tensor)
torch.mul(tensor, tensor, out=z3)
result("products", *y1.flatten().tolist(), bool((y1 == y2).all()), bool((y1 == y3).all()), bool((z1 == z3).all()),
       *z2[0].tolist())

agg = tensor.sum()
agg_item = agg.item()
print(agg_item, type(agg_item))
result("agg", agg_item, type(agg_item).__name__)

print(f"{tensor} \n")
tensor.add_(5)
print(tensor)
result("add_", *tensor[0].tolist())

t = torch.ones(5)
print(f"t: {t}")
n = t.numpy()
print(f"n: {n}")
t.add_(1)
result("bridge_tensor_to_numpy", *n.tolist())

n = np.ones(5)
t = torch.from_numpy(n)
np.add(n, 1, out=n)
print(f"t: {t}")
result("bridge_numpy_to_tensor", *t.tolist(), str(t.dtype))
