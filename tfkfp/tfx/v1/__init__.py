"""TFX's `tfx.v1` namespace as module files use it: `tfx.components.FnArgs` and friends."""

from tfkfp.tfx.v1 import components

__all__ = ["components"]
