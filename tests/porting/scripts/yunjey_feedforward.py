# yunjey/pytorch-tutorial 01-basics/feedforward_neural_network: NeuralNet(784 -> 500 -> ReLU -> 10) on MNIST, Adam,
# device = cuda if torch.cuda.is_available() else cpu, .to(device), batches of 100 (train shuffled).
# Data: digits upscaled to 28x28. Weights: set from NumPy. The shuffled order depends on the RNG: the test accuracy
# and loss are compared loosely (torch alone, over three shuffle seeds: accuracy 87.6-92.0 %, loss 0.377-0.438,
# measured); the device and the untrained test accuracy and loss exactly.
# porting: loose=accuracy,test_loss loose_rtol=0.15 loose_atol=0.03
import torch
import torch.nn as nn
from _offline import digits28, result, set_weights

torch.manual_seed(0)  # each library's run is then reproducible; the two generators still differ, hence loose

# Device configuration
device = torch.device('cuda' if torch.cuda.is_available() else 'cpu')

# Hyper-parameters
input_size = 784
hidden_size = 500
num_classes = 10
num_epochs = 2
batch_size = 100
learning_rate = 0.001

x_train, y_train, x_test, y_test = digits28(n_train=1200, n_valid=500)
train_dataset = torch.utils.data.TensorDataset(torch.from_numpy(x_train).unsqueeze(1), torch.from_numpy(y_train))
test_dataset = torch.utils.data.TensorDataset(torch.from_numpy(x_test).unsqueeze(1), torch.from_numpy(y_test))

train_loader = torch.utils.data.DataLoader(dataset=train_dataset, batch_size=batch_size, shuffle=True)
test_loader = torch.utils.data.DataLoader(dataset=test_dataset, batch_size=batch_size, shuffle=False)


# Fully connected neural network with one hidden layer
class NeuralNet(nn.Module):
    def __init__(self, input_size, hidden_size, num_classes):
        super(NeuralNet, self).__init__()
        self.fc1 = nn.Linear(input_size, hidden_size)
        self.relu = nn.ReLU()
        self.fc2 = nn.Linear(hidden_size, num_classes)

    def forward(self, x):
        out = self.fc1(x)
        out = self.relu(out)
        out = self.fc2(out)
        return out


model = set_weights(torch, NeuralNet(input_size, hidden_size, num_classes)).to(device)

# Loss and optimizer
criterion = nn.CrossEntropyLoss()
optimizer = torch.optim.Adam(model.parameters(), lr=learning_rate)


def evaluate():
    with torch.no_grad():
        correct = 0
        total = 0
        loss = 0
        for images, labels in test_loader:
            images = images.reshape(-1, 28*28).to(device)
            labels = labels.to(device)
            outputs = model(images)
            loss += criterion(outputs, labels).item() * labels.size(0)
            _, predicted = torch.max(outputs.data, 1)
            total += labels.size(0)
            correct += (predicted == labels).sum().item()
    return 100 * correct / total, loss / total


result("device", str(device), device.type)
result("untrained", *evaluate())

# Train the model
total_step = len(train_loader)
for epoch in range(num_epochs):
    for i, (images, labels) in enumerate(train_loader):
        # Move tensors to the configured device
        images = images.reshape(-1, 28*28).to(device)
        labels = labels.to(device)

        # Forward pass
        outputs = model(images)
        loss = criterion(outputs, labels)

        # Backward and optimize
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()

        if (i+1) % 4 == 0:
            print('Epoch [{}/{}], Step [{}/{}], Loss: {:.4f}'
                  .format(epoch+1, num_epochs, i+1, total_step, loss.item()))

accuracy, test_loss = evaluate()
print('Accuracy of the network on the 10000 test images: {} %'.format(accuracy))
result("accuracy", accuracy)
result("test_loss", test_loss)
