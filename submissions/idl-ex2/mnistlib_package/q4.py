import torch
from torch import nn

from mnistlib.data import mnist_loaders
from mnistlib.models import DigitClassifier
from mnistlib.training import fit_classifier, plot_log

torch.manual_seed(1)
train_dl, test_dl = mnist_loaders(batch_size=10, first=100)  # the first 100 examples: torch.arange(100)
clf_100 = DigitClassifier()
criterion = nn.CrossEntropyLoss()
log = fit_classifier(clf_100, train_dl, test_dl, criterion, 20, torch.optim.Adam(clf_100.parameters(), lr=1e-3))
plot_log(log, "classifier from scratch, 100 examples")
