"""The tfkfp KFP components: each stage's typed signature, declared once."""

from tfkfp.components.evaluator import evaluator
from tfkfp.components.fingerprint import fingerprint
from tfkfp.components.infer import infer
from tfkfp.components.infra_validate import infra_validate
from tfkfp.components.ingest import ingest
from tfkfp.components.pusher import pusher
from tfkfp.components.statistics import statistics
from tfkfp.components.tflite import tflite
from tfkfp.components.trainer import trainer
from tfkfp.components.transform import transform
from tfkfp.components.tuner import tuner
from tfkfp.components.validate import validate

STAGES = (
    fingerprint,
    ingest,
    statistics,
    validate,
    transform,
    tuner,
    trainer,
    tflite,
    evaluator,
    infra_validate,
    pusher,
    infer,
)

__all__ = [
    "STAGES",
    "evaluator",
    "fingerprint",
    "infer",
    "infra_validate",
    "ingest",
    "pusher",
    "statistics",
    "tflite",
    "trainer",
    "transform",
    "tuner",
    "validate",
]
