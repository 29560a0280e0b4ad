import copy

import torch
from torch import nn

from mnistlib.data import mnist_loaders
from mnistlib.models import AE, DigitClassifier
from mnistlib.training import fit_classifier, plot_log

torch.manual_seed(1)
train_dl, test_dl = mnist_loaders(batch_size=10, first=100)
ae = AE()
ae.load_state_dict(torch.load("checkpoints/autoencoder.pt"))
clf_pretrained = DigitClassifier(enc=copy.deepcopy(ae.enc))
criterion = nn.CrossEntropyLoss()
opt = torch.optim.Adam([{"params": clf_pretrained.enc.parameters(), "lr": 3e-4},
                        {"params": clf_pretrained.head.parameters()}], lr=1e-3)
log = fit_classifier(clf_pretrained, train_dl, test_dl, criterion, 20, opt)
plot_log(log, "autoencoder encoder fine-tuned, 100 examples")
