"""Question 3: decode from the classifier's encoder (question 2), kept fixed; only a new decoder is trained."""

import os

import torch
from torch import nn, optim

from common import (CHECKPOINTS, LATENT_DIM, AutoEncoder, Classifier, ConvDecoder, ConvEncoder, in_memory, loader,
                    mnist, reconstruction_loss, show_digits)

torch.manual_seed(0)
EPOCHS = 2

train_set = mnist(train=True)
test_set = mnist(train=False)
train_loader = loader(in_memory(train_set), shuffle=True)
test_loader = loader(in_memory(test_set), shuffle=False, batch_size=1000)

classifier = Classifier(ConvEncoder(LATENT_DIM))
classifier.load_state_dict(torch.load(os.path.join(CHECKPOINTS, "classifier.pt")))
encoder = classifier.encoder
encoder.requires_grad_(False)  # no gradient steps on the encoder ...
encoder.eval()  # ... and its BatchNorm layers keep the running statistics learned in question 2

decoder = ConvDecoder(LATENT_DIM)  # the architecture of question 1's decoder, fresh weights
clf_autoencoder = AutoEncoder(encoder, decoder)
loss_fn = nn.L1Loss()
optimizer = optim.Adam(decoder.parameters(), lr=3e-3)

for epoch in range(1, EPOCHS + 1):
    decoder.train()
    for images, _ in train_loader:
        with torch.no_grad():
            latent = encoder(images)  # (B, d) from the fixed classifier encoder
        loss = loss_fn(decoder(latent), images)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    print(f"epoch {epoch}: test L1 {reconstruction_loss(clf_autoencoder, test_loader, loss_fn):.4f}")

autoencoder = AutoEncoder(ConvEncoder(LATENT_DIM), ConvDecoder(LATENT_DIM))
autoencoder.load_state_dict(torch.load(os.path.join(CHECKPOINTS, "autoencoder.pt")))
clf_loss = reconstruction_loss(clf_autoencoder, test_loader, loss_fn)
ae_loss = reconstruction_loss(autoencoder, test_loader, loss_fn)
print(f"test L1: autoencoder (Q1) {ae_loss:.4f}, classifier encoder + decoder (Q3) {clf_loss:.4f}")

images, _ = next(iter(test_loader))
images = images[:60]
with torch.no_grad():
    panels = {"input": images, "autoencoder (Q1)": autoencoder(images), "classifier encoder (Q3)": clf_autoencoder(images)}
show_digits(panels, cols=10, title=f"60 test digits: L1 {ae_loss:.4f} (Q1) vs {clf_loss:.4f} (Q3)")
