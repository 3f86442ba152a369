import copy
import json
import os

import pytest
from tfkfp.containers import evaluator
from tfkfp.containers.runtime import InputError
from tfkfp.pipelines.penguins.pipeline import EVAL_CONFIG


def _config(lower_bound: float) -> dict:
    config = copy.deepcopy(EVAL_CONFIG)
    metric = config["metrics_specs"][0]["metrics"][1]
    metric["per_slice_thresholds"][0]["threshold"]["value_threshold"]["lower_bound"] = lower_bound
    return config


def _run(tmp_path, trained, ingested, config, **kw):
    return evaluator.run(
        model_dir=trained.model,
        examples_dir=ingested.examples,
        eval_config=config,
        evaluation_dir=str(tmp_path / "evaluation"),
        blessing_dir=str(tmp_path / "blessing"),
        schema_dir=ingested.schema,
        **kw,
    )


def test_blessed(tmp_path, trained, ingested):
    report = _run(tmp_path, trained, ingested, _config(0.5))
    assert report["blessed"] is True
    assert report["metrics"]["sparse_categorical_accuracy"] > 0.8
    assert report["metrics"]["example_count"] == ingested.counts["eval"]
    assert os.path.exists(tmp_path / "blessing" / "BLESSED")
    saved = json.loads((tmp_path / "blessing" / "blessing.json").read_text())
    assert saved["blessed"] is True and saved["failures"] == []


def test_not_blessed_names_the_failing_metric(tmp_path, trained, ingested):
    report = _run(tmp_path, trained, ingested, json.dumps(_config(1.01)))
    assert report["blessed"] is False
    assert os.path.exists(tmp_path / "blessing" / "NOT_BLESSED")
    [failure] = report["failures"]
    assert failure["metric"] == "sparse_categorical_accuracy" and failure["slice"] == "Overall"


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ("{not json", "not valid JSON"),
        ({"model_specs": [{"label_kee": "species"}]}, "label_kee"),
        (
            {
                "model_specs": [
                    {"label_key": "speciez", "preprocessing_function_names": ["transform_features"]}
                ]
            },
            "label_key 'speciez'",
        ),
        ({"model_specs": [{"label_key": "species", "signature_name": "nope"}]}, "signature 'nope'"),
    ],
)
def test_bad_eval_config(tmp_path, trained, ingested, config, message):
    with pytest.raises(InputError, match=message):
        _run(tmp_path, trained, ingested, config)
    assert not (tmp_path / "blessing").exists()
