# Patrick Loeber's PyTorch course, 05 "gradient descent with autograd": f = w * x fitted to f = 2 * x,
# w = torch.tensor(0.0, requires_grad=True), MSE by hand, w -= lr * w.grad under no_grad, w.grad.zero_().
# Nothing random.
import torch
from _offline import result

X = torch.tensor([1, 2, 3, 4], dtype=torch.float32)
Y = torch.tensor([2, 4, 6, 8], dtype=torch.float32)

w = torch.tensor(0.0, dtype=torch.float32, requires_grad=True)


# model output
def forward(x):
    return w * x


# loss = MSE
def loss(y, y_pred):
    return ((y_pred - y)**2).mean()


print(f'Prediction before training: f(5) = {forward(5).item():.3f}')
result("before", forward(5).item())

# Training
learning_rate = 0.01
n_iters = 100

for epoch in range(n_iters):
    # predict = forward pass
    y_pred = forward(X)

    # loss
    l = loss(Y, y_pred)

    # calculate gradients = backward pass
    l.backward()

    # update weights
    with torch.no_grad():
        w -= learning_rate * w.grad

    # zero the gradients after updating
    w.grad.zero_()

    if epoch % 10 == 0:
        print(f'epoch {epoch+1}: w = {w.item():.3f}, loss = {l.item():.8f}')
        result(f"epoch_{epoch}", w.item(), l.item())

print(f'Prediction after training: f(5) = {forward(5).item():.3f}')
result("after", forward(5).item(), f"{forward(5).item():.3f}")
