"""mnistlib: the models, data and training loops of exercise 2; the scripts q1.py ... q5.py use them."""
