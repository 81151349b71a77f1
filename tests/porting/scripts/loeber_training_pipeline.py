# Patrick Loeber's PyTorch course, 06 "training pipeline": nn.Linear(n_features, n_features), nn.MSELoss,
# torch.optim.SGD, X of shape (4, 1), a custom LinearRegression(nn.Module). Weights: set from NumPy (same in both runs).
import torch
import torch.nn as nn
from _offline import result, set_weights

X = torch.tensor([[1], [2], [3], [4]], dtype=torch.float32)
Y = torch.tensor([[2], [4], [6], [8]], dtype=torch.float32)

n_samples, n_features = X.shape
print(f'#samples: {n_samples}, #features: {n_features}')
X_test = torch.tensor([5], dtype=torch.float32)

input_size = n_features
output_size = n_features


class LinearRegression(nn.Module):
    def __init__(self, input_dim, output_dim):
        super(LinearRegression, self).__init__()
        # define diferent layers
        self.lin = nn.Linear(input_dim, output_dim)

    def forward(self, x):
        return self.lin(x)


model = set_weights(torch, LinearRegression(input_size, output_size))

print(f'Prediction before training: f(5) = {model(X_test).item():.3f}')
result("before", model(X_test).item())

learning_rate = 0.01
n_iters = 100

loss = nn.MSELoss()
optimizer = torch.optim.SGD(model.parameters(), lr=learning_rate)

for epoch in range(n_iters):
    y_predicted = model(X)
    l = loss(Y, y_predicted)
    l.backward()
    optimizer.step()
    optimizer.zero_grad()

    if epoch % 10 == 0:
        [w, b] = model.parameters()  # unpack parameters
        print('epoch ', epoch+1, ': w = ', w[0][0].item(), ' loss = ', l)
        result(f"epoch_{epoch}", w[0][0].item(), b.item(), l.item())

print(f'Prediction after training: f(5) = {model(X_test).item():.3f}')
result("after", model(X_test).item())
