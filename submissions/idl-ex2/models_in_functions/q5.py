"""Q5: start from the q1 autoencoder's encoder and fine-tune on the same 100 images."""
import os

import torch
from torch import nn

from Classes import *


def main():
    torch.manual_seed(0)
    train_dl, test_dl = get_data(n_train=100, batch_size=10)
    ae = ConvAE()
    ae.load_state_dict(torch.load(os.path.join(SAVE, "q1_ae.pt")))
    clf = Classifier()
    clf.encoder.load_state_dict(ae.encoder.state_dict())
    hist = train_classifier(clf, train_dl, test_dl, nn.CrossEntropyLoss(), epochs=15)
    plot_hist(hist, "Q5 (pretrained encoder, 100 labels)")


if __name__ == "__main__":
    main()
