# Part 1.3: train the CNN from cnn.py on MNIST
import torch
import torch.nn as nn
import torch.nn.functional as F
import torch.optim as optim
from torchvision import datasets, transforms
import matplotlib.pyplot as plt

torch.manual_seed(0)
EPOCHS = 2

from cnn import CNN

transform = transforms.Compose([transforms.ToTensor(), transforms.Normalize((0.1307,), (0.3081,))])
train_set = datasets.MNIST('data', train=True, download=True, transform=transform)
test_set = datasets.MNIST('data', train=False, download=True, transform=transform)
train_loader = torch.utils.data.DataLoader(train_set, batch_size=64, shuffle=True)
test_loader = torch.utils.data.DataLoader(test_set, batch_size=1000, shuffle=False)

model = CNN()
print(model)
n_params = sum(p.numel() for p in model.parameters() if p.requires_grad)
print("trainable parameters:", n_params)

criterion = nn.NLLLoss()
optimizer = optim.Adam(model.parameters(), lr=0.001)
losses = []
for epoch in range(EPOCHS):
    model.train()
    running = 0.0
    for i, (x, y) in enumerate(train_loader):
        optimizer.zero_grad()
        out = model(x)
        loss = criterion(out, y)
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
        running += loss.item()
    print("epoch", epoch + 1, "mean loss", running / (i + 1))

model.eval()
correct = torch.zeros(10)
total = torch.zeros(10)
with torch.no_grad():
    for images, labels in test_loader:
        predicted = model(images).argmax(dim=1)
        for c in range(10):
            mask = labels == c
            correct[c] += (predicted[mask] == c).sum()
            total[c] += mask.sum()
print(f'test accuracy: {correct.sum() / total.sum():.2%}')
for c in range(10):
    print(f'digit {c}: {correct[c] / total[c]:.2%}')

plt.plot(losses)
plt.xlabel('batch')
plt.ylabel('training loss')
plt.show()

torch.save(model.state_dict(), "cnn.pt")
