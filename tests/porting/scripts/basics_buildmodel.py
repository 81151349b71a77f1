# Basics "Build the Neural Network": NeuralNetwork, nn.Softmax(dim=1), argmax, and each layer on its own
# (nn.Flatten, nn.Linear, nn.ReLU, nn.Sequential), named_parameters with sizes.
# Inputs (torch.rand) and weights: drawn/set from NumPy (same in both runs).
import numpy as np
import torch
from _offline import result, set_weights
from torch import nn

device = torch.accelerator.current_accelerator().type if torch.accelerator.is_available() else "cpu"
print(f"Using {device} device")


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


model = set_weights(torch, NeuralNetwork(), seed=1).to(device)
print(model)

rng = np.random.default_rng(0)
X = torch.from_numpy(rng.random((1, 28, 28), dtype=np.float32)).to(device)
logits = model(X)
pred_probab = nn.Softmax(dim=1)(logits)
y_pred = pred_probab.argmax(1)
print(f"Predicted class: {y_pred}")
result("pred_probab", *pred_probab[0].tolist())
result("y_pred", y_pred.item())

input_image = torch.from_numpy(rng.random((3, 28, 28), dtype=np.float32))
print(input_image.size())
flatten = nn.Flatten()
flat_image = flatten(input_image)
print(flat_image.size())
result("flat", *flat_image.size())

layer1 = set_weights(torch, nn.Linear(in_features=28*28, out_features=20), seed=2)
hidden1 = layer1(flat_image)
print(hidden1.size())
print(f"Before ReLU: {hidden1}\n\n")
hidden1 = nn.ReLU()(hidden1)
print(f"After ReLU: {hidden1}")
result("hidden1", *hidden1.size(), *hidden1[0, :5].tolist())

seq_modules = set_weights(torch, nn.Sequential(
    flatten,
    layer1,
    nn.ReLU(),
    nn.Linear(20, 10)
), seed=3)
logits = seq_modules(input_image)
softmax = nn.Softmax(dim=1)
pred_probab = softmax(logits)
result("seq_probab", *pred_probab[:, 0].tolist())

print(f"Model structure: {model}\n\n")
for name, param in model.named_parameters():
    print(f"Layer: {name} | Size: {param.size()} | Values : {param[:2]} \n")
    result(f"param_{name}", *param.size(), *param.flatten()[:2].tolist())
