"""`tfx.v1.components`: the types a module file's `run_fn` and `tuner_fn` are annotated with."""

from tfkfp.containers.train.fn_args import DataAccessor, FnArgs, TunerFnResult

__all__ = ["DataAccessor", "FnArgs", "TunerFnResult"]
