"""penguin_tuner's tuner_fn with a callback from the `keras` package in its fit_kwargs.

TFX-era modules import callbacks as `from keras.callbacks import ...` beside `tf.keras` models.
"""

import logging

import penguin_tuner
from keras.callbacks import LambdaCallback


def tuner_fn(fn_args):
    result = penguin_tuner.tuner_fn(fn_args)
    log = logging.getLogger("tfkfp")
    result.fit_kwargs["callbacks"] = [
        LambdaCallback(on_epoch_end=lambda epoch, logs: log.info("lambda callback: epoch end"))
    ]
    return result
