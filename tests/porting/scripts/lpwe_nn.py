# "Learning PyTorch with examples": the polynomial as nn.Sequential(nn.Linear(3, 1), nn.Flatten(0, 1)),
# nn.MSELoss(reduction='sum') and a hand-written SGD step over model.parameters().
# 1000 steps instead of the tutorial's 2000.
# Weights: nn.Linear's random init replaced by values set from NumPy (same in both runs).
import math

import numpy as np
import torch
from _offline import result

x = torch.linspace(-math.pi, math.pi, 2000)
y = torch.sin(x)

# For this example, the output y is a linear function of (x, x^2, x^3), so
# we can consider it as a linear layer neural network. Let's prepare the tensor (x, x^2, x^3).
p = torch.tensor([1, 2, 3])
xx = x.unsqueeze(-1).pow(p)

model = torch.nn.Sequential(
    torch.nn.Linear(3, 1),
    torch.nn.Flatten(0, 1)
)
with torch.no_grad():
    model[0].weight.copy_(torch.from_numpy(np.array([[0.1, -0.2, 0.05]], dtype=np.float32)))
    model[0].bias.fill_(0.3)

loss_fn = torch.nn.MSELoss(reduction='sum')

learning_rate = 1e-6
for t in range(1000):
    y_pred = model(xx)
    loss = loss_fn(y_pred, y)
    if t % 100 == 99:
        result(f"loss_{t}", loss.item())

    model.zero_grad()
    loss.backward()

    with torch.no_grad():
        for param in model.parameters():
            param -= learning_rate * param.grad

linear_layer = model[0]
print(f'Result: y = {linear_layer.bias.item()} + {linear_layer.weight[:, 0].item()} x + '
      f'{linear_layer.weight[:, 1].item()} x^2 + {linear_layer.weight[:, 2].item()} x^3')
result("coefficients", linear_layer.bias.item(), *linear_layer.weight[0].tolist())
result("xx_shape", *xx.shape)
