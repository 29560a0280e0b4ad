"""Q2: classifier = the encoder architecture of q1 (new weights) + MLP, cross entropy."""
import os

import torch
from torch import nn

from Classes import *


def main():
    torch.manual_seed(0)
    train_dl, test_dl = get_data()
    clf = Classifier()
    loss_fn = nn.CrossEntropyLoss()
    hist = train_classifier(clf, train_dl, test_dl, loss_fn, epochs=3, lr=2e-3)
    os.makedirs(SAVE, exist_ok=True)
    torch.save(clf.state_dict(), os.path.join(SAVE, "q2_clf.pt"))
    plot_hist(hist, "Q2 classifier")


if __name__ == "__main__":
    main()
