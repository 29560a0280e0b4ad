import torch
from torch import nn, optim
from torch.utils.data import Subset

from models.encoder import LATENT_DIM, Classifier, ConvEncoder
from utils import fit_classifier, in_memory, loader, mnist, plot_history


def run(epochs=20):
    torch.manual_seed(0)
    small_dl = loader(Subset(mnist(train=True), range(100)), shuffle=True, batch_size=10)
    test_dl = loader(in_memory(mnist(train=False)), shuffle=False, batch_size=1000)
    clf = Classifier(ConvEncoder(LATENT_DIM))
    opt = optim.Adam(clf.parameters(), lr=1e-3)
    hist = fit_classifier(clf, small_dl, test_dl, nn.CrossEntropyLoss(), opt, epochs)
    plot_history(hist, "q4: 100 training examples")
    return clf
