import torch
from torch import nn

from mnistlib.data import mnist_loaders
from mnistlib.models import DigitClassifier
from mnistlib.training import fit_classifier, plot_log

torch.manual_seed(1)
train_dl, test_dl = mnist_loaders(batch_size=64)
clf = DigitClassifier()
criterion = nn.CrossEntropyLoss()
log = fit_classifier(clf, train_dl, test_dl, criterion, 2, torch.optim.Adam(clf.parameters(), lr=1e-3))
torch.save(clf.state_dict(), "checkpoints/classifier.pt")
plot_log(log, "classifier, all training examples")
