"""Question 2: the encoder of question 1 (same architecture, fresh weights) with a two-layer MLP, cross-entropy."""

import os

import torch
from torch import nn, optim

from common import (CHECKPOINTS, LATENT_DIM, Classifier, ConvEncoder, fit_classifier, in_memory, loader, mnist,
                    plot_history)

torch.manual_seed(0)
EPOCHS = 2

train_set = mnist(train=True)
test_set = mnist(train=False)
train_loader = loader(in_memory(train_set), shuffle=True)
test_loader = loader(in_memory(test_set), shuffle=False, batch_size=1000)

classifier = Classifier(ConvEncoder(LATENT_DIM))
loss_fn = nn.CrossEntropyLoss()  # on logits
optimizer = optim.Adam(classifier.parameters(), lr=1e-3)
history = fit_classifier(classifier, train_loader, test_loader, loss_fn, optimizer, EPOCHS)

os.makedirs(CHECKPOINTS, exist_ok=True)
torch.save(classifier.state_dict(), os.path.join(CHECKPOINTS, "classifier.pt"))
plot_history(history, "Q2 classifier on the whole training set")
