"""Write the fair-threshold samples of dl2025-a2: `python submissions/make_bars_samples.py`.

- ``course_template``: Part 1 as the course hands it out and a student runs it unmodified: the
  feed-forward notebook in the course template's style (``Normalize((0.5,), (0.5,))``, DataLoaders,
  SGD with lr 0.002 and momentum 0.9, 4 epochs, a test loop printing the accuracy of every class, no
  seed), and ``CNNMNIST.ipynb`` made from it by swapping the network and nothing else.
- ``logits_ce``: the feed-forward notebook with line (5), the LogSoftmax, removed and the loss changed
  to ``CrossEntropyLoss``, as task 1.2 suggests (Part 1's feed-forward notebook only).

Notebooks are written without outputs and with stable cell ids.
"""

from __future__ import annotations

from pathlib import Path

import nbformat

from autoencoder_notebooks import notebook
from notebook_samples import write_samples

HERE = Path(__file__).parent / "dl2025-a2"

TEMPLATE_BATCH_SIZE = 64
"""The DataLoader batch of the course template's loops (also the reference submission's: see
``make_dl2025_a2_samples.py``)."""

SETUP = """\
import torch
import torchvision
import torchvision.transforms as transforms
import torch.nn as nn
import torch.optim as optim"""

LOADERS = f"""\
transform = transforms.Compose(
    [transforms.ToTensor(),
     transforms.Normalize((0.5,), (0.5,))])

batch_size = {TEMPLATE_BATCH_SIZE}

trainset = torchvision.datasets.MNIST(root='./data', train=True,
                                      download=True, transform=transform)
trainloader = torch.utils.data.DataLoader(trainset, batch_size=batch_size,
                                          shuffle=True)

testset = torchvision.datasets.MNIST(root='./data', train=False,
                                     download=True, transform=transform)
testloader = torch.utils.data.DataLoader(testset, batch_size=batch_size,
                                         shuffle=False)

classes = ('0', '1', '2', '3', '4', '5', '6', '7', '8', '9')"""

FF_NETWORK = """\
class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.main = nn.Sequential(
            nn.Linear(in_features=784, out_features=128),
            nn.ReLU(),
            nn.Linear(in_features=128, out_features=64),
            nn.ReLU(),
            nn.Linear(in_features=64, out_features=10),
            nn.LogSoftmax(dim=1)
        )

    def forward(self, input):
        input = input.view(-1, 28*28)
        return self.main(input)


net = Net()
print(net)"""

CNN_NETWORK = """\
class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.main = nn.Sequential(
            nn.Conv2d(1, 16, 3),
            nn.ReLU(),
            nn.MaxPool2d(2, 2),
            nn.Conv2d(16, 32, 3),
            nn.ReLU(),
            nn.MaxPool2d(2, 2),
            nn.Flatten(),
            nn.Linear(800, 10),
            nn.LogSoftmax(dim=1)
        )

    def forward(self, input):
        return self.main(input)


net = Net()
print(net)"""

LOSS = """\
criterion = nn.NLLLoss()
optimizer = optim.SGD(net.parameters(), lr=0.002, momentum=0.9)"""

TRAIN = """\
for epoch in range(4):  # loop over the dataset multiple times

    running_loss = 0.0
    for i, data in enumerate(trainloader, 0):
        # get the inputs; data is a list of [inputs, labels]
        inputs, labels = data

        # zero the parameter gradients
        optimizer.zero_grad()

        # forward + backward + optimize
        outputs = net(inputs)
        loss = criterion(outputs, labels)
        loss.backward()
        optimizer.step()

        # print statistics
        running_loss += loss.item()
        if i % 20 == 19:    # print every 20 mini-batches
            print(f'[{epoch + 1}, {i + 1:5d}] loss: {running_loss / 20:.3f}')
            running_loss = 0.0

print('Finished Training')"""

TEST = """\
# prepare to count predictions for each class
correct_pred = {classname: 0 for classname in classes}
total_pred = {classname: 0 for classname in classes}

# again no gradients needed
with torch.no_grad():
    for data in testloader:
        images, labels = data
        outputs = net(images)
        _, predictions = torch.max(outputs, 1)
        # collect the correct predictions for each class
        for label, prediction in zip(labels, predictions):
            if label == prediction:
                correct_pred[classes[label]] += 1
            total_pred[classes[label]] += 1


# print accuracy for each class
for classname, correct_count in correct_pred.items():
    accuracy = 100 * float(correct_count) / total_pred[classname]
    print(f'Accuracy for class: {classname:5s} is {accuracy:.1f} %')"""

COUNT = """\
print('Number of parameters:', sum(p.numel() for p in net.parameters()))"""


def template(title: str, network: str, loss: str = LOSS) -> nbformat.NotebookNode:
    """A course-template notebook: imports, loaders, the network, loss and optimiser, training, per-class test."""
    return notebook(title, SETUP, LOADERS, network, COUNT, loss, TRAIN, TEST)


LOGITS_NETWORK = FF_NETWORK.replace(
    "            nn.Linear(in_features=64, out_features=10),\n            nn.LogSoftmax(dim=1)\n",
    "            nn.Linear(in_features=64, out_features=10)\n",
)
assert LOGITS_NETWORK != FF_NETWORK, "line (5) was not removed"

SAMPLES: dict[str, dict[str, nbformat.NotebookNode]] = {
    # The course's notebooks run as handed out; the CNN only swaps the network.
    "course_template": {
        "feedForwardMNIST.ipynb": template("Feed-forward network on MNIST", FF_NETWORK),
        "CNNMNIST.ipynb": template("Convolutional network on MNIST", CNN_NETWORK),
    },
    # Task 1.2 done in the notebook: logits out, CrossEntropyLoss in.
    "logits_ce": {
        "feedForwardMNIST.ipynb": template(
            "Feed-forward network with logits", LOGITS_NETWORK,
            LOSS.replace("criterion = nn.NLLLoss()", "criterion = nn.CrossEntropyLoss()  # the network outputs logits"),
        ),
    },
}


def main() -> None:
    """Write every sample folder of this generator."""
    write_samples(HERE, SAMPLES)


if __name__ == "__main__":
    main()
