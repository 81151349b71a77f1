# "Learning PyTorch with examples": dynamic control flow + weight sharing: a fourth and fifth order term whose
# count is drawn at every forward pass with Python's random, reusing parameter e; SGD with momentum.
# Weights: loaded from NumPy; the control flow draws from Python's random, seeded the same in both runs.
# 1500 steps instead of 30000.
import math
import random

import numpy as np
import torch
from _offline import result


class DynamicNet(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.a = torch.nn.Parameter(torch.randn(()))
        self.b = torch.nn.Parameter(torch.randn(()))
        self.c = torch.nn.Parameter(torch.randn(()))
        self.d = torch.nn.Parameter(torch.randn(()))
        self.e = torch.nn.Parameter(torch.randn(()))

    def forward(self, x):
        """For the forward pass of the model, we randomly choose either 4, 5 and reuse the e parameter to
        compute the contribution of these orders."""
        y = self.a + self.b * x + self.c * x ** 2 + self.d * x ** 3
        for exp in range(4, random.randint(4, 6)):
            y = y + self.e * x ** exp
        return y

    def string(self):
        return (f'y = {self.a.item()} + {self.b.item()} x + {self.c.item()} x^2 + {self.d.item()} x^3 + '
                f'{self.e.item()} x^4 ? + {self.e.item()} x^5 ?')


random.seed(0)
x = torch.linspace(-math.pi, math.pi, 2000)
y = torch.sin(x)

model = DynamicNet()
with torch.no_grad():
    for param, value in zip(model.parameters(), np.random.default_rng(3).standard_normal(5) * 0.1):
        param.fill_(float(value))

criterion = torch.nn.MSELoss(reduction='sum')
optimizer = torch.optim.SGD(model.parameters(), lr=1e-8, momentum=0.9)
for t in range(1500):
    y_pred = model(x)
    loss = criterion(y_pred, y)
    if t % 200 == 199:
        result(f"loss_{t}", loss.item())
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()

print(f'Result: {model.string()}')
result("coefficients", *[p.item() for p in model.parameters()])
