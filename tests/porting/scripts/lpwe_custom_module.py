# "Learning PyTorch with examples": the polynomial as a custom nn.Module with four nn.Parameters, trained with SGD.
# Weights: the module draws torch.randn(()); the script then loads NumPy values with load_state_dict (same in both runs).
# 1000 steps instead of the tutorial's 2000.
import math

import numpy as np
import torch
from _offline import result


class Polynomial3(torch.nn.Module):
    def __init__(self):
        """In the constructor we instantiate four parameters and assign them as member parameters."""
        super().__init__()
        self.a = torch.nn.Parameter(torch.randn(()))
        self.b = torch.nn.Parameter(torch.randn(()))
        self.c = torch.nn.Parameter(torch.randn(()))
        self.d = torch.nn.Parameter(torch.randn(()))

    def forward(self, x):
        return self.a + self.b * x + self.c * x ** 2 + self.d * x ** 3

    def string(self):
        return f'y = {self.a.item()} + {self.b.item()} x + {self.c.item()} x^2 + {self.d.item()} x^3'


x = torch.linspace(-math.pi, math.pi, 2000)
y = torch.sin(x)

model = Polynomial3()
init = np.random.default_rng(2).standard_normal(4).astype(np.float32)
model.load_state_dict({k: torch.tensor(v) for k, v in zip("abcd", init)})
result("parameter_names", *[name for name, _ in model.named_parameters()])

criterion = torch.nn.MSELoss(reduction='sum')
optimizer = torch.optim.SGD(model.parameters(), lr=1e-6)
for t in range(1000):
    y_pred = model(x)
    loss = criterion(y_pred, y)
    if t % 100 == 99:
        result(f"loss_{t}", loss.item())
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()

print(f'Result: {model.string()}')
result("coefficients", model.a.item(), model.b.item(), model.c.item(), model.d.item())
