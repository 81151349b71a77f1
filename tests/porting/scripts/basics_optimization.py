# Basics "Optimizing Model Parameters": hyperparameters, train_loop (model.train()) and test_loop (model.eval(),
# torch.no_grad()), nn.CrossEntropyLoss, torch.optim.SGD.
# Data: digits upscaled to 28x28 in TensorDatasets. Weights: set from NumPy. The train loader shuffles as in the
# tutorial, so the per-batch losses depend on the RNG: those are not printed, only the epoch-end test loss and
# accuracy, compared loosely: torch alone, over three shuffle seeds, gives test losses 0.78-0.84 and accuracies
# 0.836-0.883 (measured).
# porting: loose=test loose_rtol=0.1 loose_atol=0.03
import torch
from _offline import digits28, result, set_weights
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

torch.manual_seed(0)  # each library's run is then reproducible; the two generators still differ, hence loose

x_train, y_train, x_test, y_test = digits28(n_train=768, n_valid=256)
training_data = TensorDataset(torch.from_numpy(x_train).unsqueeze(1), torch.from_numpy(y_train))
test_data = TensorDataset(torch.from_numpy(x_test).unsqueeze(1), torch.from_numpy(y_test))

train_dataloader = DataLoader(training_data, batch_size=64, shuffle=True)
test_dataloader = DataLoader(test_data, batch_size=64)


class NeuralNetwork(nn.Module):
    def __init__(self):
        super().__init__()
        self.flatten = nn.Flatten()
        self.linear_relu_stack = nn.Sequential(
            nn.Linear(28*28, 512),
            nn.ReLU(),
            nn.Linear(512, 512),
            nn.ReLU(),
            nn.Linear(512, 10),
        )

    def forward(self, x):
        x = self.flatten(x)
        logits = self.linear_relu_stack(x)
        return logits


model = set_weights(torch, NeuralNetwork())

learning_rate = 1e-1
batch_size = 64
epochs = 4

loss_fn = nn.CrossEntropyLoss()
optimizer = torch.optim.SGD(model.parameters(), lr=learning_rate)


def train_loop(dataloader, model, loss_fn, optimizer):
    size = len(dataloader.dataset)
    # Set the model to training mode - important for batch normalization and dropout layers
    model.train()
    seen = 0
    for batch, (X, y) in enumerate(dataloader):
        pred = model(X)
        loss = loss_fn(pred, y)

        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
        seen += len(X)
        if batch % 100 == 0:
            loss, current = loss.item(), batch * batch_size + len(X)
            print(f"loss: {loss:>7f}  [{current:>5d}/{size:>5d}]")
    return seen


def test_loop(dataloader, model, loss_fn):
    model.eval()
    size = len(dataloader.dataset)
    num_batches = len(dataloader)
    test_loss, correct = 0, 0

    with torch.no_grad():
        for X, y in dataloader:
            pred = model(X)
            test_loss += loss_fn(pred, y).item()
            correct += (pred.argmax(1) == y).type(torch.float).sum().item()

    test_loss /= num_batches
    correct /= size
    print(f"Test Error: \n Accuracy: {(100*correct):>0.1f}%, Avg loss: {test_loss:>8f} \n")
    return test_loss, correct


for t in range(epochs):
    print(f"Epoch {t+1}\n-------------------------------")
    result(f"seen_{t}", train_loop(train_dataloader, model, loss_fn, optimizer), len(train_dataloader))
result("test", *test_loop(test_dataloader, model, loss_fn))
print("Done!")
