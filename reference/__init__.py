"""Reference implementations of every task in the graded assignments.

Organised by topic rather than by assignment, because assignments share tasks:
``classifiers`` (MNIST feed-forward and CNN, SIGNS CNN), ``autoencoders``
(fully connected, convolutional, linear "PCA" autoencoders), ``pca``, ``vae``,
``transfer`` (classifiers on encoders, freezing, fine-tuning), ``training``
(fast in-memory trainers) and ``metrics``.
"""
