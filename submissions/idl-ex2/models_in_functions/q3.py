"""Q3: keep the q2 classifier's encoder fixed, train a new decoder on it."""
import os

import torch
from torch import nn

from Classes import *


def main():
    torch.manual_seed(0)
    train_dl, test_dl = get_data()
    classifier = Classifier()
    classifier.load_state_dict(torch.load(os.path.join(SAVE, "q2_clf.pt")))
    for p in classifier.encoder.parameters():
        p.requires_grad = False
    classifier.encoder.eval()

    clf_ae = ConvAE(classifier.encoder, Decoder())
    loss_fn = nn.L1Loss()
    opt = torch.optim.Adam(clf_ae.decoder.parameters(), lr=3e-3)
    for epoch in range(2):
        clf_ae.decoder.train()
        for x, _ in train_dl:
            opt.zero_grad()
            loss_fn(clf_ae(x), x).backward()
            opt.step()

    ae = ConvAE()
    ae.load_state_dict(torch.load(os.path.join(SAVE, "q1_ae.pt")))
    print("L1 of the q1 autoencoder:", l1_on(ae, test_dl))
    print("L1 with the classifier's encoder:", l1_on(clf_ae, test_dl))
    x, _ = next(iter(test_dl))
    with torch.no_grad():
        show_images([x[:10], ae(x[:10]), clf_ae(x[:10])], "Q3: input / q1 autoencoder / classifier encoder")


if __name__ == "__main__":
    main()
