"""Stands in for the `tfx` package in a module file: `from tfkfp.tfx import v1 as tfx`.

Only what module files use from TFX's public `v1` API is here (`tfx.components.FnArgs`,
`.DataAccessor`, `.TunerFnResult`); importing it does not import TensorFlow.
"""

from tfkfp.tfx import v1

__all__ = ["v1"]
