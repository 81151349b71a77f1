# yunjey/pytorch-tutorial 01-basics/logistic_regression: MNIST, nn.Linear(784, 10), CrossEntropyLoss, SGD, batches of
# 100 from DataLoaders (train shuffled), accuracy with torch.max(outputs.data, 1).
# Data: digits upscaled to 28x28 as (N, 1, 28, 28) TensorDatasets. Weights: set from NumPy. The shuffled order
# depends on the RNG: the train losses are not printed, the test accuracy and loss are compared loosely (torch alone,
# over three shuffle seeds: accuracy 88.8-90.2 %, loss 0.850-0.860, measured).
# porting: loose=accuracy,test_loss loose_rtol=0.05 loose_atol=0.03
import torch
import torch.nn as nn
from _offline import digits28, result, set_weights

torch.manual_seed(0)  # each library's run is then reproducible; the two generators still differ, hence loose

# Hyper-parameters
input_size = 28 * 28    # 784
num_classes = 10
num_epochs = 3
batch_size = 100
learning_rate = 0.05

x_train, y_train, x_test, y_test = digits28(n_train=1200, n_valid=500)
train_dataset = torch.utils.data.TensorDataset(torch.from_numpy(x_train).unsqueeze(1), torch.from_numpy(y_train))
test_dataset = torch.utils.data.TensorDataset(torch.from_numpy(x_test).unsqueeze(1), torch.from_numpy(y_test))

# Data loader (input pipeline)
train_loader = torch.utils.data.DataLoader(dataset=train_dataset,
                                           batch_size=batch_size,
                                           shuffle=True)

test_loader = torch.utils.data.DataLoader(dataset=test_dataset,
                                          batch_size=batch_size,
                                          shuffle=False)

# Logistic regression model
model = set_weights(torch, nn.Linear(input_size, num_classes))

# Loss and optimizer
# nn.CrossEntropyLoss() computes softmax internally
criterion = nn.CrossEntropyLoss()
optimizer = torch.optim.SGD(model.parameters(), lr=learning_rate)

# Train the model
total_step = len(train_loader)
result("total_step", total_step)
for epoch in range(num_epochs):
    for i, (images, labels) in enumerate(train_loader):
        # Reshape images to (batch_size, input_size)
        images = images.reshape(-1, input_size)

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

# Test the model
# In test phase, we don't need to compute gradients (for memory efficiency)
with torch.no_grad():
    correct = 0
    total = 0
    test_loss = 0
    for images, labels in test_loader:
        images = images.reshape(-1, input_size)
        outputs = model(images)
        test_loss += criterion(outputs, labels).item() * labels.size(0)
        _, predicted = torch.max(outputs.data, 1)
        total += labels.size(0)
        correct += (predicted == labels).sum()

    print('Accuracy of the model on the 10000 test images: {} %'.format(100 * correct / total))
    result("accuracy", (100 * correct / total).item())
    result("test_loss", test_loss / total)
    result("total", total)

# Save the model checkpoint
torch.save(model.state_dict(), 'model.ckpt')
