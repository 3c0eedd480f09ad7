"""Tiny study files for the tests: real MNIST, 20 images per class, one epoch, a 16-unit MLP."""

#: [study], [data] and [base] of a tiny study; tests append [scientific] and [nuisance].
TINY = """
[study]
name = "tiny"
seeds = 2

[data]
per_class = 20
validation = 0.01

[base]
model = { kind = "mlp", hidden = [16] }
optimizer = { name = "sgd", lr = 0.1 }
batch_size = 32
epochs = 1
"""

GRID = TINY + """
[scientific]
"model.activation" = ["relu", "tanh"]
"""

TUNED = TINY + """
[scientific]
"model.activation" = ["relu", "tanh"]

[nuisance]
"optimizer.lr" = { log = [0.01, 1.0] }
trials = 3
parallel = 2
"""
