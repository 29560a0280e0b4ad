"""Q1: convolutional autoencoder, d = 10, L1 loss."""
import os

import torch
from torch import nn

from Classes import *


def train_autoencoder(model, train_dl, epochs=2):
    loss_fn = nn.L1Loss()
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    for epoch in range(epochs):
        model.train()
        for x, _ in train_dl:
            opt.zero_grad()
            loss = loss_fn(model(x), x)
            loss.backward()
            opt.step()
        print("epoch", epoch + 1, "train L1", loss.item())


def main():
    torch.manual_seed(0)
    train_dl, test_dl = get_data()
    model = ConvAE()
    train_autoencoder(model, train_dl)
    print("test L1:", l1_on(model, test_dl))
    os.makedirs(SAVE, exist_ok=True)
    torch.save(model.state_dict(), os.path.join(SAVE, "q1_ae.pt"))
    x, _ = next(iter(test_dl))
    show_images([x[:10], model(x[:10])], "Q1: test digits and their reconstructions")


if __name__ == "__main__":
    main()
