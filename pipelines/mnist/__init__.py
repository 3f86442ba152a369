"""MNIST-style images (8x8 digits): fixed-length pixel lists, a CNN, TFLite, both evaluated."""
