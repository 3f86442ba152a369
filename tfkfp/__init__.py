"""tfkfp: TensorFlow Transform, training, TFMA evaluation and pushing as Kubeflow Pipelines v2 components."""

__version__ = "0.1.0"
