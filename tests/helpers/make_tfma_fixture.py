"""Writes tests/data/tfma_penguins/: one real TFMA output for test_eval_report.

Not collected by `pytest` (no test_ prefix); run it explicitly after a TFMA upgrade:
    .venv/bin/python -m pytest tests/helpers/make_tfma_fixture.py
The candidate is the session's trained penguin model, the baseline the one-step model; the
config below gives passing, failing (small islands) and diff rows, and a confusion matrix.
"""

import json
import shutil
from pathlib import Path

from tfkfp.containers import evaluator
from tfkfp.pipelines.penguins.pipeline import EVAL_CONFIG

FIXTURE = Path(__file__).parents[1] / "data" / "tfma_penguins"
CONFIG = {
    **EVAL_CONFIG,
    "metrics_specs": [
        {
            "metrics": [
                {
                    "class_name": "ExampleCount",
                    "threshold": {"value_threshold": {"lower_bound": 20}},
                },
                {
                    "class_name": "SparseCategoricalAccuracy",
                    "per_slice_thresholds": [
                        {
                            "slicing_specs": [{}],
                            "threshold": {
                                "value_threshold": {"lower_bound": 0.5},
                                "change_threshold": {
                                    "direction": "HIGHER_IS_BETTER",
                                    "absolute": -0.05,
                                },
                            },
                        }
                    ],
                },
            ]
        }
    ],
}


def test_write_tfma_fixture(tmp_path, trained, weak_trained, ingested):
    result = evaluator.run(
        model=trained.model,
        examples=ingested.examples,
        eval_config=CONFIG,
        evaluation=str(tmp_path / "evaluation"),
        blessing=str(tmp_path / "blessing"),
        report=str(tmp_path / "report.md"),
        slice_chart=str(tmp_path / "slices.html"),
        schema=ingested.schema,
        baseline_model=weak_trained.model,
    )
    shutil.rmtree(FIXTURE, ignore_errors=True)
    shutil.copytree(tmp_path / "evaluation", FIXTURE / "evaluation")
    shutil.copytree(Path(trained.model) / "assets", FIXTURE / "model" / "assets")
    (FIXTURE / "eval_config.json").write_text(json.dumps(CONFIG, indent=1) + "\n")
    # What the evaluator made of it, for the test to compare against.
    (FIXTURE / "evaluation.json").write_text(result.to_json() + "\n")
