import torch
from torch import nn, optim

from models.encoder import LATENT_DIM, Classifier, ConvEncoder
from utils import fit_classifier, in_memory, loader, mnist, plot_history


def run(epochs=2):
    torch.manual_seed(0)
    train_dl = loader(in_memory(mnist(train=True)), shuffle=True)
    test_dl = loader(in_memory(mnist(train=False)), shuffle=False, batch_size=1000)
    clf = Classifier(ConvEncoder(LATENT_DIM))
    opt = optim.Adam(clf.parameters(), lr=1e-3)
    hist = fit_classifier(clf, train_dl, test_dl, nn.CrossEntropyLoss(), opt, epochs)
    torch.save(clf.state_dict(), "checkpoints/clf.pt")
    plot_history(hist, "q2: classifier")
    return clf
