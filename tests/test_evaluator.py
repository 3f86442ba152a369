import copy
import itertools
import json
import os
import shutil
import subprocess
import sys

import pytest

from tests.helpers import damage_examples, run_cli
from tfkfp.containers import evaluator, events, pusher
from tfkfp.containers.runtime import InputError
from tfkfp.containers.views.markdown import escape
from tfkfp.pipelines.penguins.pipeline import EVAL_CONFIG

SPECIES = ["Adelie", "Gentoo", "Chinstrap"]
HIGHER = "HIGHER_IS_BETTER"


def _config(lower_bound: float, change: float | None = None) -> dict:
    """The penguin config with its accuracy threshold's bounds replaced (change None: none)."""
    config = copy.deepcopy(EVAL_CONFIG)
    metric = config["metrics_specs"][0]["metrics"][1]
    threshold = metric["per_slice_thresholds"][0]["threshold"]
    threshold["value_threshold"]["lower_bound"] = lower_bound
    threshold.pop("change_threshold", None)
    if change is not None:
        threshold["change_threshold"] = {"direction": HIGHER, "absolute": change}
    return config


def _with_threshold(threshold: dict) -> dict:
    """The penguin config with its accuracy threshold replaced."""
    config = copy.deepcopy(EVAL_CONFIG)
    config["metrics_specs"][0]["metrics"][1]["per_slice_thresholds"][0]["threshold"] = threshold
    return config


def _slice_threshold(values: dict, lower_bound: float) -> dict:
    """The penguin config with an accuracy threshold on the slice `values` names (no change)."""
    config = copy.deepcopy(EVAL_CONFIG)
    metric = config["metrics_specs"][0]["metrics"][1]
    metric["per_slice_thresholds"] = [
        {
            "slicing_specs": [{"feature_values": values}],
            "threshold": {"value_threshold": {"lower_bound": lower_bound}},
        }
    ]
    return config


def _nulls(value, where="") -> list[str]:
    """Paths of every None inside nested dicts and lists."""
    if value is None:
        return [where]
    if isinstance(value, dict):
        return [p for k, v in value.items() for p in _nulls(v, f"{where}.{k}")]
    if isinstance(value, list):
        return [p for i, v in enumerate(value) for p in _nulls(v, f"{where}[{i}]")]
    return []


def _run(tmp_path, model, ingested, config, **kw):
    return evaluator.run(
        model=model,
        examples=ingested.examples,
        eval_config=config,
        evaluation=str(tmp_path / "evaluation"),
        blessing=str(tmp_path / "blessing"),
        report=str(tmp_path / "report.md"),
        slice_chart=str(tmp_path / "slices.html"),
        schema=ingested.schema,
        **kw,
    )


def _blessing(tmp_path) -> dict:
    return json.loads((tmp_path / "blessing" / "blessing.json").read_text())


def _push(model: str, destination: str) -> str:
    blessing = os.path.join(os.path.dirname(model), "blessed")
    os.makedirs(blessing, exist_ok=True)
    open(os.path.join(blessing, "BLESSED"), "w").close()
    return pusher.run(model, blessing, destination).pushed_uri


@pytest.mark.slow  # a further full evaluation (TFMA); the fast tier keeps a few
def test_blessed_without_baseline_skips_change_thresholds(tmp_path, trained, ingested):
    report = _run(tmp_path, trained.model, ingested, _config(0.5, change=0.0), baseline_from="")
    assert report.blessed is True
    assert report.baseline is None and "no baseline given" in report.baseline_note
    assert report.metrics["sparse_categorical_accuracy"] > 0.8
    assert report.metrics["example_count"] == ingested.counts["eval"]
    assert os.path.exists(tmp_path / "blessing" / "BLESSED")
    saved = _blessing(tmp_path)
    assert saved["blessed"] is True and saved["failures"] == []
    results = {row["kind"]: row["result"] for row in saved["thresholds"]}
    assert results == {"value": "pass", "change": "skipped (no baseline)"}
    # per-slice metrics: overall first, then one row per island
    assert list(report.slices)[0] == "Overall"
    # island names, not the vocabulary ids TFMA sliced the transformed feature by
    islands = {s for s in report.slices if s.startswith("island=")}
    assert islands == {"island=Biscoe", "island=Dream", "island=Torgersen"}
    assert report.slice_note == ""
    chart = (tmp_path / "slices.html").read_text()
    assert chart.count("<svg") == 2 and "island=Biscoe" in chart
    assert "lower bound 0.5 (Overall)" in chart
    # confusion matrix of the multi-class task, class names from the label's vocabulary
    classification = report.classification
    assert sorted(classification["categories"]) == sorted(SPECIES)
    matrix = classification["matrix"]
    assert len(matrix) == 3 and all(len(row) == 3 for row in matrix)
    assert sum(map(sum, matrix)) == ingested.counts["eval"]
    assert sum(matrix[i][i] for i in range(3)) / ingested.counts["eval"] == pytest.approx(
        report.metrics["sparse_categorical_accuracy"], abs=1e-6
    )
    assert classification["roc"] is None  # three classes: no ROC
    md = (tmp_path / "report.md").read_text()
    assert md.startswith("# Evaluation: BLESSED")
    assert "Baseline: none (no baseline given" in md and "change thresholds skipped" in md
    assert "| sparse\\_categorical\\_accuracy | Overall | value: ≥ 0.5 | pass |" in md
    assert "| sparse\\_categorical\\_accuracy | Overall | change: diff ≥ +0 | skipped" in md
    assert "| Overall | " in md and "| island=Dream |" in md
    assert "## Confusion matrix" in md and "| **Adelie** |" in md
    # the raw TFMA output is kept and loads in a notebook
    import tensorflow_model_analysis as tfma

    assert tfma.load_eval_result(str(tmp_path / "evaluation")).slicing_metrics


def test_not_blessed_names_the_failing_metric(tmp_path, trained, ingested):
    # accuracy never reaches 1.01
    report = _run(tmp_path, trained.model, ingested, json.dumps(_config(1.01)))
    assert report.blessed is False
    assert os.path.exists(tmp_path / "blessing" / "NOT_BLESSED")
    [failure] = report.failures
    assert failure["metric"] == "sparse_categorical_accuracy" and failure["slice"] == "Overall"
    assert failure["value"] == pytest.approx(report.metrics["sparse_categorical_accuracy"])
    assert failure["threshold"] == {"valueThreshold": {"lowerBound": 1.01}}
    md = (tmp_path / "report.md").read_text()
    assert md.startswith("# Evaluation: NOT BLESSED")
    assert "| Overall | sparse\\_categorical\\_accuracy |" in md and "≥ 1.01" in md


def test_no_thresholds_is_blessed_and_says_why(tmp_path, trained, ingested):
    config = copy.deepcopy(EVAL_CONFIG)
    config["metrics_specs"] = [{"metrics": [{"class_name": "ExampleCount"}]}]
    report = _run(tmp_path, trained.model, ingested, config)
    assert report.blessed is True and report.thresholds == []
    assert "no thresholds" in report.reason
    assert report.classification is None  # no classification metric named: no plots
    md = (tmp_path / "report.md").read_text()
    assert "No thresholds in the eval config." in md and "Confusion matrix" not in md


@pytest.mark.slow  # a further full evaluation (TFMA); the fast tier keeps a few
def test_progress_lines_count_eval_rows_against_the_manifest(
    tmp_path, trained, ingested, monkeypatch, caplog
):
    monkeypatch.setattr(events, "PROGRESS_EVERY", 0.0)  # a line per batch
    caplog.set_level("INFO", logger="tfkfp")
    # Row counts are this process's: worker processes (the default on a pod with several CPUs)
    # count their own rows in their own logs.
    report = _run(
        tmp_path,
        trained.model,
        ingested,
        EVAL_CONFIG,
        beam_pipeline_args=["--direct_num_workers=1"],
    )
    total = ingested.counts["eval"]
    lines = [r.getMessage() for r in caplog.records if "rows evaluated" in r.getMessage()]
    assert lines and all(line.endswith(f"/{total} rows evaluated") for line in lines), lines
    assert lines[-1] == f"evaluator: {total}/{total} rows evaluated"
    assert report.metrics["example_count"] == total


@pytest.mark.slow  # a further full evaluation (TFMA); the fast tier keeps a few
def test_slice_fails_while_overall_passes(tmp_path, trained, weak_trained, ingested):
    config = copy.deepcopy(EVAL_CONFIG)
    # A spec-wide threshold applies to every slice: the smallest island has fewer examples.
    config["metrics_specs"] = [
        {
            "metrics": [
                {
                    "class_name": "ExampleCount",
                    "threshold": {"value_threshold": {"lower_bound": 20}},
                }
            ]
        }
    ]
    # the baseline comes in as a model artifact here
    report = _run(tmp_path, trained.model, ingested, config, baseline_model=weak_trained.model)
    assert report.blessed is False
    assert report.baseline == weak_trained.model
    counts = {s: m["example_count"]["candidate"] for s, m in report.slices.items()}
    assert counts["Overall"] == ingested.counts["eval"] >= 20
    small = sorted(s for s, n in counts.items() if n < 20)
    assert small and all(s.startswith("island=") for s in small)
    assert sorted(f["slice"] for f in report.failures) == small
    assert all(f["metric"] == "example_count" and not f["is_diff"] for f in report.failures)
    [row] = report.thresholds
    assert row["slices"] == "every slice" and row["result"] == f"fail: {', '.join(small)}"
    md = (tmp_path / "report.md").read_text()
    assert f"Baseline: `{weak_trained.model}` (baseline model artifact)" in md
    assert "Each cell: candidate (baseline, diff)." in md


@pytest.mark.slow  # a further full evaluation (TFMA); the fast tier keeps a few
def test_change_threshold_candidate_beats_baseline_pushed_to_gcs(
    tmp_path, trained, weak_trained, ingested, gcs
):
    destination = f"gs://{gcs.bucket}/serving/penguins"
    pushed = _push(weak_trained.model, destination)
    assert pushed.startswith(destination + "/")
    report = _run(
        tmp_path, trained.model, ingested, _config(0.5, change=0.0), baseline_from=destination
    )
    assert report.blessed is True, report.failures
    assert report.baseline == pushed and "newest complete version" in report.baseline_note
    overall = report.slices["Overall"]["sparse_categorical_accuracy"]
    assert overall["candidate"] > overall["baseline"]
    assert overall["diff"] == pytest.approx(overall["candidate"] - overall["baseline"])
    assert report.baseline_metrics["sparse_categorical_accuracy"] == overall["baseline"]
    assert [row["result"] for row in report.thresholds] == ["pass", "pass"]
    assert f"Baseline: `{pushed}`" in (tmp_path / "report.md").read_text()


@pytest.mark.slow  # a further full evaluation (TFMA); the fast tier keeps a few
def test_change_threshold_candidate_does_not_beat_pushed_baseline(
    tmp_path, trained, weak_trained, ingested
):
    destination = str(tmp_path / "serving")
    pushed = _push(trained.model, destination)
    # the weak model passes the value threshold but loses against the pushed one
    report = _run(
        tmp_path,
        weak_trained.model,
        ingested,
        _config(0.0, change=-0.01),
        baseline_from=destination,
    )
    assert report.blessed is False
    assert report.baseline == pushed
    [failure] = report.failures
    assert failure["is_diff"] is True and failure["slice"] == "Overall"
    assert failure["metric"] == "sparse_categorical_accuracy" and failure["value"] < -0.01
    assert failure["threshold"] == {"changeThreshold": {"direction": HIGHER, "absolute": -0.01}}
    results = {row["kind"]: row["result"] for row in report.thresholds}
    assert results == {"value": "pass", "change": "fail: Overall"}
    md = (tmp_path / "report.md").read_text()
    assert "sparse\\_categorical\\_accuracy (diff vs baseline)" in md


@pytest.mark.slow  # a further full evaluation (TFMA); the fast tier keeps a few
def test_push_destination_without_complete_version_is_no_baseline(tmp_path, trained, ingested):
    destination = tmp_path / "serving"
    # an interrupted push: the version folder has the model but not the PUSHED.json marker
    shutil.copytree(trained.model, destination / "1700000000")
    report = _run(
        tmp_path,
        trained.model,
        ingested,
        _config(0.5, change=0.01),
        baseline_from=str(destination),
    )
    assert report.baseline is None and report.blessed is True
    assert "no complete version" in report.baseline_note
    md = (tmp_path / "report.md").read_text()
    assert (
        escape(f"no complete version (a version folder with PUSHED.json) under {destination}") in md
    )
    assert "skipped (no baseline)" in md


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
        (
            {
                "model_specs": [
                    {
                        "label_key": "species",
                        "preprocessing_function_names": ["transform_features"],
                        "prediction_key": "probs",
                    }
                ]
            },
            "prediction_key 'probs' is not an output",
        ),
        (
            {"metrics_specs": [{"metrics": [{"class_name": "ExampleCount"}]}, {"metrics": [{}]}]},
            r"metrics_specs\[1\].metrics\[0\].class_name: expected a metric class name",
        ),
        (
            {"metrics_specs": [{"metrics": [{"class_name": "Accuracyy"}]}]},
            r"metrics_specs\[0\].metrics\[0\].class_name: cannot make metric 'Accuracyy'",
        ),
        (
            {"metrics_specs": [{"metrics": [{"class_name": "Accuracy", "module": "no.such"}]}]},
            "in module 'no.such'",
        ),
        (
            _with_threshold({"change_threshold": {"absolute": -0.05}}),
            r"metrics\[1\].per_slice_thresholds\[0\].threshold.change_threshold: expected a "
            "direction, HIGHER_IS_BETTER or LOWER_IS_BETTER",
        ),
        (
            _with_threshold({"change_threshold": {"direction": HIGHER}}),
            "change_threshold: expected absolute or relative",
        ),
        (
            _with_threshold({"value_threshold": {}}),
            "value_threshold: expected lower_bound or upper_bound",
        ),
        (
            {**EVAL_CONFIG, "slicing_specs": [{}, {"feature_keys": ["islnd"]}]},
            r"eval_config: slicing_specs\[1\] slices on 'islnd', which is neither a feature",
        ),
        (
            {**EVAL_CONFIG, "slicing_specs": [{"feature_values": {"colour": "red"}}]},
            r"slicing_specs\[0\] slices on 'colour'",
        ),
        (
            {**EVAL_CONFIG, "slicing_specs": [{"feature_values": {"island": "Atlantis"}}]},
            r"eval_config: slicing_specs\[0\].feature_values: island='Atlantis' is not in the "
            r"model's vocabulary assets/island \(Biscoe, Dream, Torgersen\)",
        ),
        (
            _slice_threshold({"island": "biscoe"}, 0.5),
            r"metrics_specs\[0\].metrics\[1\].per_slice_thresholds\[0\].slicing_specs\[0\]"
            r".feature_values: island='biscoe' is not in the model's vocabulary",
        ),
    ],
)
def test_bad_eval_config(tmp_path, trained, ingested, config, message):
    with pytest.raises(InputError, match=message) as raised:
        _run(tmp_path, trained.model, ingested, config)
    assert "\n" not in str(raised.value)  # one line (protobuf's field list came on a second)
    assert not (tmp_path / "blessing").exists() and not (tmp_path / "report.md").exists()


@pytest.mark.parametrize("how", ["boundary", "mid_record"])
def test_damaged_eval_split_is_refused(tmp_path, trained, ingested, how):
    # Cut on a record boundary, the evaluator BLESSED the model on 35 of 84 eval rows.
    path = damage_examples(ingested.examples, tmp_path / "examples", "eval", how)
    with pytest.raises(InputError, match=f"examples: {path} is damaged"):
        evaluator.run(
            model=trained.model,
            examples=str(tmp_path / "examples"),
            eval_config=EVAL_CONFIG,
            evaluation=str(tmp_path / "evaluation"),
            blessing=str(tmp_path / "blessing"),
            report=str(tmp_path / "report.md"),
            slice_chart=str(tmp_path / "slices.html"),
            schema=ingested.schema,
        )
    assert not (tmp_path / "blessing").exists() and not (tmp_path / "evaluation").exists()
    assert not (tmp_path / "report.md").exists()


def _examples_without(src: str, dst, split: str, feature: str) -> str:
    """A copy of an examples artifact whose `split` lacks `feature`, manifest rewritten."""
    import glob

    import tensorflow as tf

    from tfkfp.containers.store import examples as examples_io
    from tfkfp.containers.store import examples as manifest

    shutil.copytree(src, dst)
    for path in glob.glob(os.path.join(dst, f"Split-{split}", "*.gz")):  # every shard
        records = list(examples_io.read_records(path))
        writer = examples_io.TFRecordWriter(path)
        for record in records:
            example = tf.train.Example.FromString(record)
            del example.features.feature[feature]
            writer.write(example.SerializeToString())
        writer.close()
    counts = {s: e.records for s, e in manifest.read(str(dst)).splits.items()}
    manifest.write(str(dst), counts)
    return str(dst)


@pytest.mark.slow  # a further full evaluation (TFMA); the fast tier keeps a few
def test_label_missing_from_eval_split_is_one_line_exit_2(tmp_path, trained, ingested):
    # It gave 600-800 lines of Beam traceback from inside TFMA.
    examples = _examples_without(ingested.examples, tmp_path / "examples", "eval", "species")
    args = {
        "model": trained.model,
        "examples": examples,
        "eval_config": EVAL_CONFIG,
        "evaluation": str(tmp_path / "evaluation"),
        "blessing": str(tmp_path / "blessing"),
        "report": str(tmp_path / "report.md"),
        "slice_chart": str(tmp_path / "slices.html"),
        "schema": ingested.schema,
    }
    code = (
        "from tfkfp.containers import evaluator\n"
        "from tfkfp.containers.runtime import entrypoint\n"
        f"entrypoint(evaluator.run, **{args!r})\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "TF_USE_LEGACY_KERAS"}
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=600
    )
    assert proc.returncode == 2, proc.stderr[-3000:]
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert errors == [proc.stderr.strip().splitlines()[-1]]
    assert errors[0].startswith("error: examples: the eval split has no feature 'species'")
    assert "Traceback" not in proc.stderr
    assert not (tmp_path / "blessing").exists() and not (tmp_path / "evaluation").exists()
    assert not (tmp_path / "report.md").exists()


def test_required_feature_missing_from_eval_split_is_refused(tmp_path, trained, ingested):
    examples = _examples_without(ingested.examples, tmp_path / "examples", "eval", "island")
    with pytest.raises(InputError, match="examples: the eval split has no feature 'island'"):
        _run(
            tmp_path, trained.model, ingested.__class__(examples, ingested.schema, {}), EVAL_CONFIG
        )
    assert not (tmp_path / "blessing").exists()


def test_label_missing_without_schema_is_found_by_the_model(tmp_path, trained, ingested):
    # No schema: the label comes from transform_features, which cannot parse these examples.
    examples = _examples_without(ingested.examples, tmp_path / "examples", "eval", "species")
    with pytest.raises(InputError) as raised:
        evaluator.run(
            model=trained.model,
            examples=examples,
            eval_config=EVAL_CONFIG,
            evaluation=str(tmp_path / "evaluation"),
            blessing=str(tmp_path / "blessing"),
            report=str(tmp_path / "report.md"),
            slice_chart=str(tmp_path / "slices.html"),
        )
    message = str(raised.value)
    assert message.startswith(
        "examples: the eval split does not fit the model's transform_features"
    )
    assert "species" in message and "\n" not in message
    assert not (tmp_path / "blessing").exists() and not (tmp_path / "evaluation").exists()


def test_corrupt_baseline_in_push_destination_is_one_line(tmp_path, trained, ingested):
    destination = str(tmp_path / "serving")
    pushed = _push(trained.model, destination)
    path = os.path.join(pushed, "saved_model.pb")
    # Same size as pushed (the marker's size check passes): the evaluator's own check speaks.
    size = os.path.getsize(path)
    with open(path, "wb") as fh:
        fh.write((b"\xff\xff not a protobuf" * size)[:size])
    with pytest.raises(InputError) as raised:
        _run(tmp_path, trained.model, ingested, EVAL_CONFIG, baseline_from=destination)
    message = str(raised.value)
    assert message.startswith(f"baseline_from: {pushed}: ") and "\n" not in message
    assert "saved_model.pb is not a SavedModel protobuf" in message
    # Cut short: the push destination's marker check refuses the version.
    with open(path, "wb") as fh:
        fh.write(b"\xff\xff not a protobuf")
    with pytest.raises(InputError) as raised:
        _run(tmp_path, trained.model, ingested, EVAL_CONFIG, baseline_from=destination)
    message = str(raised.value)
    assert message.startswith(f"baseline_from: {pushed} is marked complete but saved_model.pb")
    assert "\n" not in message
    assert not (tmp_path / "blessing").exists() and not (tmp_path / "report.md").exists()


def test_bad_baseline_and_beam_args(tmp_path, trained, ingested):
    with pytest.raises(InputError, match="baseline model: no SavedModel"):
        _run(tmp_path, trained.model, ingested, EVAL_CONFIG, baseline_model=str(tmp_path))
    with pytest.raises(InputError, match="beam_pipeline_args: runner 'NoSuchRunner'"):
        _run(
            tmp_path,
            trained.model,
            ingested,
            EVAL_CONFIG,
            beam_pipeline_args=["--runner=NoSuchRunner"],
        )
    assert not (tmp_path / "blessing").exists()


@pytest.mark.pipeline
def test_pipeline_skips_the_pusher_when_not_blessed(tmp_path, penguins_csv):
    root, serving = tmp_path / "root", tmp_path / "serving"
    proc = run_cli(
        "run",
        "penguins",
        "--local",
        "--param",
        f"data_uri={penguins_csv}",
        "--param",
        f"push_destination={serving}",
        "--param",
        f"eval_config={json.dumps(_config(1.01))}",  # no model reaches accuracy 1.01
        "--param",
        "train_steps=30",
        "--pipeline-root",
        str(root),
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    [run_dir] = list(root.iterdir())
    assert not (run_dir / "pusher").exists() and not serving.exists()
    assert (run_dir / "evaluator" / "blessing" / "NOT_BLESSED").is_file()
    executor = json.loads((run_dir / "evaluator" / "executor_output.json").read_text())
    assert executor["parameterValues"]["blessed"] is False
    artifacts = {k: v["artifacts"][0] for k, v in executor["artifacts"].items()}
    # What the KFP UI shows: scalar metrics, the confusion matrix and the Markdown report.
    assert set(artifacts["metrics"]["metadata"]) == {"example_count", "sparse_categorical_accuracy"}
    matrix = artifacts["classification_metrics"]["metadata"]["confusionMatrix"]
    assert sorted(a["displayName"] for a in matrix["annotationSpecs"]) == sorted(SPECIES)
    cells = [row["row"] for row in matrix["rows"]]
    assert sum(map(sum, cells)) == artifacts["metrics"]["metadata"]["example_count"]
    report = open(artifacts["report"]["uri"]).read()
    assert report.startswith("# Evaluation: NOT BLESSED") and "≥ 1.01 | fail: Overall" in report
    assert "Baseline: none (no complete version" in report  # nothing was ever pushed
    blessing = artifacts["blessing"]["metadata"]
    assert blessing["blessed"] is False and blessing["failures"][0]["slice"] == "Overall"
    # KFP's backend launcher cannot record null metadata: no `baseline: null` on a first run.
    assert "baseline" not in blessing and _nulls(blessing) == []
    assert (run_dir / "evaluator" / "evaluation" / "eval_config.json").is_file()


def _train_binary_model(examples_dir: str, model_dir: str) -> None:
    """Trains a real logistic regression (is the penguin an Adelie?) on raw tf.Examples."""
    import tensorflow as tf

    spec = {
        "bill_length_mm": tf.io.FixedLenFeature([1], tf.float32, default_value=[44.0]),
        "bill_depth_mm": tf.io.FixedLenFeature([1], tf.float32, default_value=[17.0]),
    }
    label_spec = {"species": tf.io.FixedLenFeature([1], tf.string, default_value=[""])}

    def features(examples):
        parsed = tf.io.parse_example(examples, spec)
        return tf.concat(
            [(parsed["bill_length_mm"] - 44.0) / 5.5, (parsed["bill_depth_mm"] - 17.0) / 2.0], 1
        )

    def label(examples):
        species = tf.io.parse_example(examples, label_spec)["species"]
        return tf.cast(tf.equal(species, b"Adelie"), tf.int64)

    files = tf.io.gfile.glob(os.path.join(examples_dir, "Split-train", "*.gz"))
    records = tf.data.TFRecordDataset(files, compression_type="GZIP").batch(32)
    train = records.map(lambda e: (features(e), tf.cast(label(e), tf.float32)))
    model = tf.keras.Sequential([tf.keras.layers.Dense(1, activation="sigmoid")])
    model.compile(optimizer=tf.keras.optimizers.Adam(0.1), loss="binary_crossentropy")
    model.fit(train, epochs=10, verbose=0)

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="examples")])
    def serve(examples):
        return {"probability": model(features(examples))}

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="examples")])
    def transform_features(examples):
        return {"is_adelie": label(examples)}

    tf.saved_model.save(
        model,
        model_dir,
        signatures={"serving_default": serve, "transform_features": transform_features},
    )


@pytest.mark.slow  # a further full evaluation (TFMA); the fast tier keeps a few
def test_binary_classification_gives_confusion_matrix_and_roc(tmp_path, ingested):
    model_dir = str(tmp_path / "binary_model")
    _train_binary_model(ingested.examples, model_dir)
    config = {
        "model_specs": [
            {"label_key": "is_adelie", "preprocessing_function_names": ["transform_features"]}
        ],
        "metrics_specs": [
            {
                "metrics": [
                    {"class_name": "BinaryAccuracy"},
                    {
                        "class_name": "AUC",
                        "threshold": {"value_threshold": {"lower_bound": 0.9}},
                    },
                ]
            }
        ],
    }
    report = _run(tmp_path, model_dir, ingested, config)
    assert report.blessed is True, report.failures
    classification = report.classification
    assert classification["categories"] == ["0", "1"]  # no vocabulary asset: class ids
    [[tn, fp], [fn, tp]] = classification["matrix"]
    assert tn + fp + fn + tp == ingested.counts["eval"]
    assert (tn + tp) / ingested.counts["eval"] == pytest.approx(
        report.metrics["binary_accuracy"], abs=1e-6
    )
    roc = classification["roc"]
    assert len(roc["fpr"]) == len(roc["tpr"]) == len(roc["thresholds"]) > 10
    assert all(0.0 <= v <= 1.0 for v in roc["fpr"] + roc["tpr"])
    # the area under the logged curve is the AUC TFMA computed
    points = sorted(zip(roc["fpr"], roc["tpr"], strict=True))
    area = sum((x1 - x0) * (y0 + y1) / 2 for (x0, y0), (x1, y1) in itertools.pairwise(points))
    assert area == pytest.approx(report.metrics["auc"], abs=0.05)


def test_slice_names_fall_back_to_ids_and_say_why(tmp_path):
    """A vocabulary not named after the feature: ids stay, and the note says what is missing."""
    from tensorflow_model_analysis.proto import metrics_for_slice_pb2

    from tfkfp.containers.evaluation.slices import SliceNames

    (tmp_path / "assets").mkdir()
    (tmp_path / "assets" / "island").write_text("Biscoe\nDream\nTorgersen\n")
    (tmp_path / "assets" / "vocab_compute_and_apply_vocabulary_1").write_text("female\nmale\n")

    def key(column, value):
        slice_key = metrics_for_slice_pb2.SliceKey()
        single = slice_key.single_slice_keys.add(column=column)
        if isinstance(value, int):
            single.int64_value = value
        else:
            single.bytes_value = value.encode()
        return slice_key

    names = SliceNames(str(tmp_path), ["island", "sex", "year"], ["island", "sex"])
    assert names(key("island", 1)) == "island=Dream"
    assert names(key("island", 4)) == "island=(not in vocabulary: id 4)"
    assert names(key("sex", 0)) == "sex=0"  # its vocabulary has another name
    assert names(key("year", 2008)) == "year=2008"  # an integer feature: no vocabulary expected
    assert names(key("island", "Biscoe")) == "island=Biscoe"  # raw values pass through
    assert names(metrics_for_slice_pb2.SliceKey()) == "Overall"
    note = names.note()
    assert note.startswith("Slices by sex show vocabulary ids: the model has no vocabulary file")
    assert "vocab_filename='sex'" in note and "island" not in note


@pytest.mark.slow  # a further full evaluation (TFMA); the fast tier keeps a few
def test_same_metrics_as_tfma_run_model_analysis(tmp_path, trained, ingested):
    """The evaluator runs TFMA's steps itself (to count rows): its numbers must stay TFMA's."""
    import tensorflow_model_analysis as tfma

    from tfkfp.containers.evaluation import checks as eval_checks
    from tfkfp.containers.store.layout import load_schema

    config = copy.deepcopy(EVAL_CONFIG)
    config["metrics_specs"] = [
        {"metrics": [{"class_name": "ExampleCount"}, {"class_name": "SparseCategoricalAccuracy"}]}
    ]
    report = _run(tmp_path, trained.model, ingested, config)
    parsed = eval_checks.parse_eval_config(config)
    direct = tfma.run_model_analysis(
        eval_shared_model=tfma.default_eval_shared_model(
            eval_saved_model_path=trained.model, eval_config=parsed
        ),
        eval_config=parsed,
        data_location=os.path.join(ingested.examples, "Split-eval", "*"),
        output_path=str(tmp_path / "direct"),
        schema=load_schema(ingested.schema),
    )
    overall = {
        name: value["doubleValue"]
        for name, value in direct.get_metrics_for_slice(()).items()
        if "doubleValue" in value
    }
    assert overall and report.metrics == pytest.approx(overall), (report.metrics, overall)
    by_island = [k for k, _ in direct.slicing_metrics if k]
    assert len(by_island) == 3 and len(report.slices) == 4  # Overall and three islands


# --- slices named by raw values (issue 25, item 2) -------------------------------------------


@pytest.mark.slow  # a further full evaluation (TFMA); the fast tier keeps a few
def test_per_slice_threshold_with_a_raw_value_blesses(tmp_path, trained, ingested):
    """`island: Biscoe`, as the report names the slice, gates that slice like its id does."""
    config = _slice_threshold({"island": "Biscoe"}, 0.5)
    config["slicing_specs"].append({"feature_values": {"island": "Dream"}})
    report = _run(tmp_path, trained.model, ingested, config)
    assert report.blessed is True and report.failures == [], report.failures
    [row] = report.thresholds
    assert row["slices"] == "island=Biscoe" and row["result"] == "pass"
    assert report.slices["island=Biscoe"]["sparse_categorical_accuracy"]["candidate"] >= 0.5
    assert "island=Dream" in report.slices  # a slicing spec by value, named as it was written
    # The same slice named by its vocabulary id: the same verdict and the same name.
    words = (os.path.join(trained.model, "assets", "island"),)
    biscoe = open(words[0]).read().splitlines().index("Biscoe")
    by_id = _run(
        tmp_path / "id", trained.model, ingested, _slice_threshold({"island": str(biscoe)}, 0.5)
    )
    assert by_id.blessed is True and by_id.thresholds == report.thresholds
    # The table and the blessing agree when the slice fails its threshold.
    failing = _run(
        tmp_path / "fail", trained.model, ingested, _slice_threshold({"island": "Biscoe"}, 1.01)
    )
    assert failing.blessed is False
    assert failing.thresholds[0]["result"] == "fail: island=Biscoe"
    assert [f["slice"] for f in failing.failures] == ["island=Biscoe"]


@pytest.mark.slow  # a further full evaluation (TFMA); the fast tier keeps a few
def test_thresholds_table_agrees_with_the_blessing_on_a_slice_without_examples(
    tmp_path, trained, ingested
):
    """An id no example has: TFMA's missing slice fails the blessing and the row alike."""
    report = _run(tmp_path, trained.model, ingested, _slice_threshold({"island": "7"}, 0.5))
    assert report.blessed is False
    [failure] = report.failures
    assert failure["metric"] is None and failure["slice"] == "island=(not in vocabulary: id 7)"
    assert report.thresholds[0]["result"].startswith("fail: island=(not in vocabulary: id 7)")
    # KFP's launcher cannot record null metadata: the missing slice's None fields are left out.
    metadata = report.blessing_metadata()
    assert _nulls(metadata) == [] and "baseline" not in metadata
    assert metadata["failures"] == [
        {"slice": failure["slice"], "is_diff": False, "message": failure["message"]}
    ]


@pytest.mark.slow  # a further full evaluation (TFMA); the fast tier keeps a few
def test_unmappable_raw_slice_value_is_one_line_exit_2(tmp_path, trained, ingested):
    args = {
        "model": trained.model,
        "examples": ingested.examples,
        "eval_config": _slice_threshold({"island": "Atlantis"}, 0.5),
        "evaluation": str(tmp_path / "evaluation"),
        "blessing": str(tmp_path / "blessing"),
        "report": str(tmp_path / "report.md"),
        "slice_chart": str(tmp_path / "slices.html"),
        "schema": ingested.schema,
    }
    code = (
        "from tfkfp.containers import evaluator\n"
        "from tfkfp.containers.runtime import entrypoint\n"
        f"entrypoint(evaluator.run, **{args!r})\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "TF_USE_LEGACY_KERAS"}
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=600
    )
    assert proc.returncode == 2, proc.stderr[-3000:]
    assert "Traceback" not in proc.stderr
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith(
        "error: eval_config: metrics_specs[0].metrics[1].per_slice_thresholds[0].slicing_specs[0]"
        ".feature_values: island='Atlantis' is not in the model's vocabulary assets/island"
    ), last
    assert not (tmp_path / "blessing").exists() and not (tmp_path / "report.md").exists()


def test_raw_value_without_a_vocabulary_file_is_refused(tmp_path, trained, ingested):
    model = tmp_path / "model"
    shutil.copytree(trained.model, model)
    os.remove(model / "assets" / "island")
    with pytest.raises(InputError) as raised:
        _run(tmp_path, str(model), ingested, _slice_threshold({"island": "Biscoe"}, 0.5))
    message = str(raised.value)
    assert message.startswith(
        "eval_config: metrics_specs[0].metrics[1].per_slice_thresholds[0].slicing_specs[0]"
        ".feature_values: island='Biscoe' cannot be mapped to the vocabulary id"
    ), message
    assert "vocab_filename='island'" in message and "\n" not in message


# --- a baseline unlike the candidate, a label the eval split cannot make (item 9) ----------------


@pytest.mark.slow  # a further full evaluation (TFMA); the fast tier keeps a few
def test_baseline_with_other_outputs(tmp_path, trained, ingested):
    baseline = str(tmp_path / "binary")
    _train_binary_model(ingested.examples, baseline)
    # A change threshold cannot be judged against it: one line naming what differs.
    with pytest.raises(InputError) as raised:
        _run(tmp_path, trained.model, ingested, EVAL_CONFIG, baseline_model=baseline)
    message = str(raised.value)
    assert message.startswith(f"baseline_model: the baseline {baseline} is unlike the candidate: ")
    assert "serving_default signature has other outputs" in message and "\n" not in message
    assert not (tmp_path / "blessing").exists()
    # Without change thresholds the candidate is evaluated alone, and the report says why.
    report = _run(tmp_path, trained.model, ingested, _config(0.5), baseline_model=baseline)
    assert report.blessed is True and report.baseline is None
    assert report.baseline_note.startswith(f"baseline {baseline} not used: its serving_default")
    assert "not used" in report.reason
    md = (tmp_path / "report.md").read_text()
    assert f"Baseline: none ({escape(f'baseline {baseline} not used')}" in md
    metadata = report.blessing_metadata()
    assert metadata["baseline_note"] == report.baseline_note and _nulls(metadata) == []


def test_eval_split_and_schema_without_the_label_is_one_line(tmp_path, trained, ingested):
    """The label is made by transform_features from `species`, which neither has."""
    from google.protobuf import text_format

    from tfkfp.containers.store.layout import load_schema

    examples = _examples_without(ingested.examples, tmp_path / "examples", "eval", "species")
    schema = load_schema(ingested.schema)
    kept = [f for f in schema.feature if f.name != "species"]
    del schema.feature[:]
    schema.feature.extend(kept)
    (tmp_path / "schema.pbtxt").write_text(text_format.MessageToString(schema))
    with pytest.raises(InputError) as raised:
        _run(
            tmp_path,
            trained.model,
            ingested.__class__(examples, str(tmp_path / "schema.pbtxt"), {}),
            EVAL_CONFIG,
        )
    message = str(raised.value)
    assert message.startswith(
        "examples: the eval split does not fit the model's transform_features signature"
    ), message
    assert "species" in message and "\n" not in message
    assert not (tmp_path / "blessing").exists()
