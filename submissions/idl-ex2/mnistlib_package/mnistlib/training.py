"""Training loops and plots."""

import matplotlib.pyplot as plt
import torch
import torchvision


def _trainable(model):
    return [p for p in model.parameters() if p.requires_grad]


def fit_reconstruction(model, train_dl, test_dl, criterion, epochs, lr=3e-3):
    """Train ``model`` to reconstruct its input; returns the test loss per epoch."""
    opt = torch.optim.Adam(_trainable(model), lr=lr)
    test_losses = []
    for epoch in range(epochs):
        model.train()
        for x, _ in train_dl:
            loss = criterion(model(x), x)
            opt.zero_grad()
            loss.backward()
            opt.step()
        test_losses.append(reconstruction_error(model, test_dl, criterion))
        print(f"[{epoch + 1}/{epochs}] test reconstruction loss {test_losses[-1]:.4f}")
    return test_losses


@torch.no_grad()
def reconstruction_error(model, dl, criterion):
    model.eval()
    losses = [criterion(model(x), x).item() * len(x) for x, _ in dl]
    return sum(losses) / len(dl.dataset)


def _pass(model, dl, criterion, opt=None):
    """One pass over ``dl``; trains when an optimizer is given. Returns (mean loss, accuracy)."""
    model.train(opt is not None)
    loss_sum, hits, n = 0.0, 0, 0
    with torch.set_grad_enabled(opt is not None):
        for x, y in dl:
            out = model(x)
            loss = criterion(out, y)
            if opt is not None:
                opt.zero_grad()
                loss.backward()
                opt.step()
            loss_sum += loss.item() * len(y)
            hits += (out.argmax(1) == y).sum().item()
            n += len(y)
    return loss_sum / n, hits / n


def fit_classifier(model, train_dl, test_dl, criterion, epochs, opt):
    """Train and evaluate once per epoch; returns {"loss": {"train": [...], "test": [...]}, "accuracy": {...}}."""
    log = {"loss": {"train": [], "test": []}, "accuracy": {"train": [], "test": []}}
    for epoch in range(epochs):
        for split, dl, o in (("train", train_dl, opt), ("test", test_dl, None)):
            loss, acc = _pass(model, dl, criterion, o)
            log["loss"][split].append(loss)
            log["accuracy"][split].append(acc)
        print(f"[{epoch + 1}/{epochs}] train acc {log['accuracy']['train'][-1]:.2%}, "
              f"test acc {log['accuracy']['test'][-1]:.2%}")
    return log


def plot_log(log, title):
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    for ax, (metric, curves) in zip(axes, log.items()):
        for split, values in curves.items():
            ax.plot(range(1, len(values) + 1), values, label=split)
        ax.set_xlabel("epoch")
        ax.set_ylabel(metric)
        ax.set_title(f"{metric} per epoch")
        ax.legend()
    fig.suptitle(title)
    plt.show()


def show_grid(images, title, nrow=10):
    grid = torchvision.utils.make_grid(images, nrow=nrow, padding=1)  # (3, H, W)
    plt.figure(figsize=(8, 8 * grid.shape[1] / grid.shape[2] + 0.5))
    plt.imshow(grid[0].numpy(), cmap="gray")
    plt.axis("off")
    plt.title(title)
    plt.show()
