# "PyTorch: Zero to GANs" lesson 2, linear regression with PyTorch built-ins: TensorDataset, DataLoader(batch_size=5,
# shuffle=True), nn.Linear(3, 2), F.mse_loss, torch.optim.SGD(lr=1e-5), fit(num_epochs, model, loss_fn, opt, train_dl).
# Data: the lesson's 15 rows. Weights: set from NumPy. The shuffled batches depend on the RNG: the per-epoch losses
# are compared loosely (torch alone, over three shuffle seeds: final loss 98.2-99.8, measured), the full-data loss
# before training and the dataset slicing exactly.
# porting: loose=epoch_9,epoch_19,epoch_29,epoch_39,epoch_49,final_loss loose_rtol=0.05
import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from _offline import result, set_weights
from torch.utils.data import DataLoader, TensorDataset

torch.manual_seed(0)  # each library's run is then reproducible; the two generators still differ, hence loose

# Input (temp, rainfall, humidity)
inputs = np.array([[73, 67, 43], [91, 88, 64], [87, 134, 58],
                   [102, 43, 37], [69, 96, 70], [74, 66, 43],
                   [91, 87, 65], [88, 134, 59], [101, 44, 37],
                   [68, 96, 71], [73, 66, 44], [92, 87, 64],
                   [87, 135, 57], [103, 43, 36], [68, 97, 70]],
                  dtype='float32')

# Targets (apples, oranges)
targets = np.array([[56, 70], [81, 101], [119, 133],
                    [22, 37], [103, 119], [57, 69],
                    [80, 102], [118, 132], [21, 38],
                    [104, 118], [57, 69], [82, 100],
                    [118, 134], [20, 38], [102, 120]],
                   dtype='float32')

inputs = torch.from_numpy(inputs)
targets = torch.from_numpy(targets)

# Define dataset
train_ds = TensorDataset(inputs, targets)
result("first_rows", *train_ds[0:3][0].flatten().tolist(), *train_ds[0:3][1].flatten().tolist())

# Define data loader
batch_size = 5
train_dl = DataLoader(train_ds, batch_size, shuffle=True)

# Define model
model = set_weights(torch, nn.Linear(3, 2))
print(model.weight)
print(model.bias)
print(list(model.parameters()))

# Define loss function
loss_fn = F.mse_loss
loss = loss_fn(model(inputs), targets)
print(loss)
result("initial_loss", loss.item())

# Define optimizer
opt = torch.optim.SGD(model.parameters(), lr=1e-5)


# Utility function to train the model
def fit(num_epochs, model, loss_fn, opt, train_dl):

    # Repeat for given number of epochs
    for epoch in range(num_epochs):

        # Train with batches of data
        for xb, yb in train_dl:

            # 1. Generate predictions
            pred = model(xb)

            # 2. Calculate loss
            loss = loss_fn(pred, yb)

            # 3. Compute gradients
            loss.backward()

            # 4. Update parameters using gradients
            opt.step()

            # 5. Reset the gradients to zero
            opt.zero_grad()

        # Print the progress
        if (epoch+1) % 10 == 0:
            print('Epoch [{}/{}], Loss: {:.4f}'.format(epoch+1, num_epochs, loss.item()))
            result(f"epoch_{epoch}", loss_fn(model(inputs), targets).item())


fit(50, model, loss_fn, opt, train_dl)
result("final_loss", loss_fn(model(inputs), targets).item())
result("batches", len(train_dl))
