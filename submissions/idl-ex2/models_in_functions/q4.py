"""Q4: the q2 classifier trained from scratch on the first 100 training images."""
import torch
from torch import nn

from Classes import *


def main():
    torch.manual_seed(0)
    train_dl, test_dl = get_data(n_train=100, batch_size=10)
    clf = Classifier()
    hist = train_classifier(clf, train_dl, test_dl, nn.CrossEntropyLoss(), epochs=15)
    plot_hist(hist, "Q4 (100 labels)")


if __name__ == "__main__":
    main()
