import copy

import torch
from torch import nn, optim
from torch.utils.data import Subset

from models.encoder import Classifier
from utils import fit_classifier, in_memory, loader, mnist, plot_history


def run(autoencoder, epochs=20):
    """Start from q1's encoder and fine-tune everything on the same 100 examples as q4."""
    torch.manual_seed(0)
    small_dl = loader(Subset(mnist(train=True), range(100)), shuffle=True, batch_size=10)
    test_dl = loader(in_memory(mnist(train=False)), shuffle=False, batch_size=1000)
    clf = Classifier(copy.deepcopy(autoencoder.encoder))
    opt = optim.Adam([{"params": clf.encoder.parameters(), "lr": 3e-4}, {"params": clf.mlp.parameters(), "lr": 1e-3}])
    hist = fit_classifier(clf, small_dl, test_dl, nn.CrossEntropyLoss(), opt, epochs)
    plot_history(hist, "q5: pre-trained encoder, fine-tuned")
    return clf
