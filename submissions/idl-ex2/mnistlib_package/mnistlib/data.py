"""MNIST loaders. Images are scaled to [0, 1] and nothing else, for the autoencoders' Sigmoid outputs."""

import torch
from torch.utils.data import DataLoader, Subset
from torchvision import datasets, transforms

TRANSFORM = transforms.Compose([transforms.ToTensor()])


def mnist_loaders(batch_size=64, first=None, root="data"):
    """(train, test) loaders; ``first``: keep only the first examples of the training set."""
    train = datasets.MNIST(root, train=True, download=True, transform=TRANSFORM)
    test = datasets.MNIST(root, train=False, download=True, transform=TRANSFORM)
    if first is not None:
        train = Subset(train, torch.arange(first))
    return DataLoader(train, batch_size=batch_size, shuffle=True), DataLoader(test, batch_size=500)
