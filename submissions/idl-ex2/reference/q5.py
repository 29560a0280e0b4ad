"""Question 5: fine-tune a classifier whose encoder starts from question 1's autoencoder, on the same 100 examples."""

import copy
import os

import torch
import torch.utils.data as data_utils
from torch import nn, optim

from common import (CHECKPOINTS, LATENT_DIM, AutoEncoder, Classifier, ConvDecoder, ConvEncoder, fit_classifier,
                    in_memory, loader, mnist, plot_history)

torch.manual_seed(0)
EPOCHS = 20

train_set = mnist(train=True)
test_set = mnist(train=False)
indices = torch.arange(100)
train_loader_CLS = loader(data_utils.Subset(train_set, indices), shuffle=True, batch_size=10)
test_loader = loader(in_memory(test_set), shuffle=False, batch_size=1000)

weights = torch.load(os.path.join(CHECKPOINTS, "autoencoder.pt"))  # saved by q1.py
pretrained = AutoEncoder(ConvEncoder(LATENT_DIM), ConvDecoder(LATENT_DIM))
pretrained.load_state_dict(weights)
finetuned_classifier = Classifier(copy.deepcopy(pretrained.encoder))  # Q1's encoder as the initial guess, a new MLP
loss_fn = nn.CrossEntropyLoss()
optimizer = optim.Adam([
    {"params": finetuned_classifier.encoder.parameters(), "lr": 3e-4},  # pre-trained: small steps
    {"params": finetuned_classifier.mlp.parameters(), "lr": 1e-3},
])
history = fit_classifier(finetuned_classifier, train_loader_CLS, test_loader, loss_fn, optimizer, EPOCHS)
plot_history(history, "Q5 pre-trained encoder fine-tuned on 100 examples")
