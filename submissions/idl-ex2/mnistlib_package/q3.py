import torch
from torch import nn

from mnistlib.data import mnist_loaders
from mnistlib.models import AE, Decoder, DigitClassifier, Frozen
from mnistlib.training import fit_reconstruction, reconstruction_error, show_grid

torch.manual_seed(1)
train_dl, test_dl = mnist_loaders(batch_size=64)
clf = DigitClassifier()
clf.load_state_dict(torch.load("checkpoints/classifier.pt"))
clf_ae = AE(enc=Frozen(clf.enc), dec=Decoder())  # only the decoder learns
criterion = nn.L1Loss()
fit_reconstruction(clf_ae, train_dl, test_dl, criterion, epochs=2)

ae = AE()
ae.load_state_dict(torch.load("checkpoints/autoencoder.pt"))
print("L1 autoencoder:", reconstruction_error(ae, test_dl, criterion))
print("L1 classifier encoder + decoder:", reconstruction_error(clf_ae, test_dl, criterion))

x, _ = next(iter(test_dl))
with torch.no_grad():
    show_grid(torch.cat([x[:60], ae(x[:60]), clf_ae(x[:60])]), "originals / autoencoder / classifier encoder")
