import os

import torch
from torch import nn, optim

from models.encoder import LATENT_DIM, AutoEncoder, ConvDecoder, ConvEncoder
from utils import in_memory, loader, mnist, reconstruction_loss, show_digits, train_autoencoder_epoch


def run(epochs=2):
    torch.manual_seed(0)
    train_dl = loader(in_memory(mnist(train=True)), shuffle=True)
    test_dl = loader(in_memory(mnist(train=False)), shuffle=False, batch_size=1000)
    model = AutoEncoder(ConvEncoder(LATENT_DIM), ConvDecoder(LATENT_DIM))
    criterion = nn.L1Loss()
    opt = optim.Adam(model.parameters(), lr=3e-3)
    for ep in range(epochs):
        tr = train_autoencoder_epoch(model, train_dl, criterion, opt)
        te = reconstruction_loss(model, test_dl, criterion)
        print(f"[q1] epoch {ep + 1}: train {tr:.4f} test {te:.4f}")
    os.makedirs("checkpoints", exist_ok=True)
    torch.save(model.state_dict(), "checkpoints/ae.pt")
    x, _ = next(iter(test_dl))
    model.eval()
    with torch.no_grad():
        show_digits({"input": x[:20], "reconstruction": model(x[:20])}, cols=10, title="q1: reconstructions")
    return model
