"""Question 4: the classifier of question 2 trained from scratch on only the first 100 training examples."""

import torch
import torch.utils.data as data_utils
from torch import nn, optim

from common import LATENT_DIM, Classifier, ConvEncoder, fit_classifier, in_memory, loader, mnist, plot_history

torch.manual_seed(0)
EPOCHS = 20

train_set = mnist(train=True)
test_set = mnist(train=False)
indices = torch.arange(100)
train_loader_CLS = loader(data_utils.Subset(train_set, indices), shuffle=True, batch_size=10)
test_loader = loader(in_memory(test_set), shuffle=False, batch_size=1000)

few_shot_classifier = Classifier(ConvEncoder(LATENT_DIM))
loss_fn = nn.CrossEntropyLoss()
optimizer = optim.Adam(few_shot_classifier.parameters(), lr=1e-3)
history = fit_classifier(few_shot_classifier, train_loader_CLS, test_loader, loss_fn, optimizer, EPOCHS)
plot_history(history, "Q4 classifier trained on 100 examples")

gap = history["train_acc"][-1] - history["test_acc"][-1]
print(f"train accuracy exceeds test accuracy by {gap:.1%} at the end: over-fitting")
