"""Training constants, as the taxi template's models/keras_model/constants.py keeps them."""

HIDDEN_UNITS = [8]
LEARNING_RATE = 0.01
TRAIN_BATCH_SIZE = 32
EVAL_BATCH_SIZE = 32
