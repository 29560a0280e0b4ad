import torch
from torch import nn, optim

from models.encoder import LATENT_DIM, AutoEncoder, ConvDecoder
from utils import in_memory, loader, mnist, reconstruction_loss, show_digits


def run(classifier, autoencoder, epochs=2):
    """Train a new decoder on the classifier's encoder, which stays fixed."""
    torch.manual_seed(0)
    train_dl = loader(in_memory(mnist(train=True)), shuffle=True)
    test_dl = loader(in_memory(mnist(train=False)), shuffle=False, batch_size=1000)
    enc = classifier.encoder
    for p in enc.parameters():
        p.requires_grad = False
    enc.eval()
    dec = ConvDecoder(LATENT_DIM)
    model = AutoEncoder(enc, dec)
    criterion = nn.L1Loss()
    opt = optim.Adam(dec.parameters(), lr=3e-3)
    for ep in range(epochs):
        dec.train()
        for x, _ in train_dl:
            with torch.no_grad():
                z = enc(x)
            loss = criterion(dec(z), x)
            opt.zero_grad()
            loss.backward()
            opt.step()
        print(f"[q3] epoch {ep + 1}: test {reconstruction_loss(model, test_dl, criterion):.4f}")
    x, _ = next(iter(test_dl))
    model.eval()
    with torch.no_grad():
        show_digits({"input": x[:60], "q1 autoencoder": autoencoder(x[:60]), "classifier encoder": model(x[:60])},
                    cols=10, title="q3: decoding from the classifier's encoder")
    return model
