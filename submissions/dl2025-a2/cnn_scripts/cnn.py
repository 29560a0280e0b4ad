import torch
import torch.nn as nn


class CNN(nn.Module):
    # conv 3x3 (16) -> relu -> maxpool -> conv 3x3 (32) -> relu -> maxpool -> 800 features -> 10 log-probs
    def __init__(self):
        super(CNN, self).__init__()
        self.features = nn.Sequential(
            nn.Conv2d(1, 16, kernel_size=3),
            nn.ReLU(),
            nn.MaxPool2d(2, 2),
            nn.Conv2d(16, 32, kernel_size=3),
            nn.ReLU(),
            nn.MaxPool2d(2, 2),
        )
        self.classifier = nn.Sequential(nn.Flatten(), nn.Linear(32 * 5 * 5, 10), nn.LogSoftmax(dim=1))

    def forward(self, x):
        x = self.features(x)
        return self.classifier(x)
