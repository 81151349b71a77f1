# 60-minute blitz "Neural Networks", MLP only: the tutorial's Net keeps fc1 (16*5*5 -> 120), fc2, fc3 and takes the
# flattened 400 features as input instead of conv outputs. parameters(), backward(gradient) on the output, MSELoss,
# grad_fn.next_functions, the manual update with f.data.sub_, then torch.optim.SGD.
# Inputs, targets and weights: from NumPy (same in both runs).
import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
import torch.optim as optim
from _offline import result, set_weights


class Net(nn.Module):

    def __init__(self):
        super(Net, self).__init__()
        # an affine operation: y = Wx + b
        self.fc1 = nn.Linear(16 * 5 * 5, 120)
        self.fc2 = nn.Linear(120, 84)
        self.fc3 = nn.Linear(84, 10)

    def forward(self, input):
        # Flatten operation: purely functional, outputs a (N, 400) Tensor
        s4 = torch.flatten(input, 1)
        f5 = F.relu(self.fc1(s4))
        f6 = F.relu(self.fc2(f5))
        output = self.fc3(f6)
        return output


net = set_weights(torch, Net())
print(net)

params = list(net.parameters())
print(len(params))
print(params[0].size())  # fc1's .weight
result("params", len(params), *params[0].size())

rng = np.random.default_rng(0)
input = torch.from_numpy(rng.standard_normal((1, 16, 5, 5)).astype(np.float32))
out = net(input)
print(out)
result("out", *out[0].tolist())

net.zero_grad()
out.backward(torch.from_numpy(rng.standard_normal((1, 10)).astype(np.float32)))
result("fc3_bias_grad", *net.fc3.bias.grad.tolist())

output = net(input)
target = torch.from_numpy(rng.standard_normal(10).astype(np.float32))  # a dummy target, for example
target = target.view(1, -1)  # make it the same shape as output
criterion = nn.MSELoss()

loss = criterion(output, target)
print(loss)
print(loss.grad_fn)  # MSELoss
print(loss.grad_fn.next_functions[0][0])  # Linear
print(loss.grad_fn.next_functions[0][0].next_functions[0][0])  # ReLU
result("loss", loss.item(), loss.grad_fn is not None, loss.grad_fn.next_functions[0][0] is not None)

net.zero_grad()  # zeroes the gradient buffers of all parameters
print('fc1.bias.grad before backward')
print(net.fc1.bias.grad)
loss.backward()
print('fc1.bias.grad after backward')
print(net.fc1.bias.grad)
result("fc1_bias_grad", *net.fc1.bias.grad[:6].tolist())

learning_rate = 0.01
for f in net.parameters():
    f.data.sub_(f.grad.data * learning_rate)
result("after_manual_step", criterion(net(input), target).item())

# create your optimizer
optimizer = optim.SGD(net.parameters(), lr=0.01)

for step in range(5):
    # in your training loop:
    optimizer.zero_grad()   # zero the gradient buffers
    output = net(input)
    loss = criterion(output, target)
    loss.backward()
    optimizer.step()    # Does the update
    result(f"sgd_{step}", loss.item())
