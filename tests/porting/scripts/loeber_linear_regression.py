# Patrick Loeber's PyTorch course, 07 "linear regression": sklearn make_regression(100, 1, noise=20), nn.Linear,
# MSELoss, SGD, predicted = model(X).detach().numpy(). Data: scikit-learn (offline, seeded). Weights: from NumPy.
import numpy as np
import torch
import torch.nn as nn
from _offline import result, set_weights
from sklearn import datasets

# 0) Prepare data
X_numpy, y_numpy = datasets.make_regression(n_samples=100, n_features=1, noise=20, random_state=4)

# cast to float Tensor
X = torch.from_numpy(X_numpy.astype(np.float32))
y = torch.from_numpy(y_numpy.astype(np.float32))
y = y.view(y.shape[0], 1)

n_samples, n_features = X.shape

# 1) Model
input_size = n_features
output_size = 1
model = set_weights(torch, nn.Linear(input_size, output_size))

# 2) Loss and optimizer
learning_rate = 0.01

criterion = nn.MSELoss()
optimizer = torch.optim.SGD(model.parameters(), lr=learning_rate)

# 3) Training loop
num_epochs = 100
for epoch in range(num_epochs):
    # Forward pass and loss
    y_predicted = model(X)
    loss = criterion(y_predicted, y)

    # Backward pass and update
    loss.backward()
    optimizer.step()

    # zero grad before new step
    optimizer.zero_grad()

    if (epoch+1) % 10 == 0:
        print(f'epoch: {epoch+1}, loss = {loss.item():.4f}')
        result(f"loss_{epoch}", loss.item())

# Plot
predicted = model(X).detach().numpy()
result("predicted", *predicted[:4, 0].tolist())
