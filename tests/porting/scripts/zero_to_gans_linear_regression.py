# "PyTorch: Zero to GANs" lesson 2, linear regression from scratch: the crop-yield data (temp, rainfall, humidity
# -> apples, oranges), w = torch.randn(2, 3), model(x) = x @ w.t() + b, mse with torch.sum / numel, 100 epochs.
# Weights: torch.randn replaced by NumPy draws (same in both runs).
import numpy as np
import torch
from _offline import result

# Input (temp, rainfall, humidity)
inputs = np.array([[73, 67, 43],
                   [91, 88, 64],
                   [87, 134, 58],
                   [102, 43, 37],
                   [69, 96, 70]], dtype='float32')

# Targets (apples, oranges)
targets = np.array([[56, 70],
                    [81, 101],
                    [119, 133],
                    [22, 37],
                    [103, 119]], dtype='float32')

# Convert inputs and targets to tensors
inputs = torch.from_numpy(inputs)
targets = torch.from_numpy(targets)
print(inputs)
print(targets)

# Weights and biases
rng = np.random.default_rng(42)
w = torch.tensor(rng.standard_normal((2, 3)), dtype=torch.float32, requires_grad=True)
b = torch.tensor(rng.standard_normal(2), dtype=torch.float32, requires_grad=True)
print(w)
print(b)


def model(x):
    return x @ w.t() + b


# Generate predictions
preds = model(inputs)
print(preds)


# MSE loss
def mse(t1, t2):
    diff = t1 - t2
    return torch.sum(diff * diff) / diff.numel()


# Compute loss
loss = mse(preds, targets)
print(loss)
result("initial_loss", loss.item())

# Compute gradients
loss.backward()
print(w.grad)
print(b.grad)
result("first_grads", *w.grad.flatten().tolist(), *b.grad.tolist())

w.grad.zero_()
b.grad.zero_()

# Train for 100 epochs
for i in range(100):
    preds = model(inputs)
    loss = mse(preds, targets)
    loss.backward()
    with torch.no_grad():
        w -= w.grad * 1e-5
        b -= b.grad * 1e-5
        w.grad.zero_()
        b.grad.zero_()
    if i % 10 == 9:
        result(f"loss_{i}", loss.item())

# Calculate loss
preds = model(inputs)
loss = mse(preds, targets)
print(loss)
result("final_loss", loss.item())
result("preds", *preds.flatten().tolist())
