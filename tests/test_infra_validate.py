"""infra_validate (TFX's InfraValidator, LOAD_AND_QUERY): real loads in a fresh process."""

import os
from pathlib import Path

import pytest

from tests.helpers import strict_model
from tests.helpers.contract import one_line_error
from tfkfp.containers import infra_validate, pusher
from tfkfp.containers.evaluation.infra_blessing import InfraValidation
from tfkfp.containers.runtime import InputError, entrypoint


def _eval_records(examples: str) -> list[bytes]:
    import glob

    import tensorflow as tf

    files = sorted(glob.glob(os.path.join(examples, "Split-eval", "*.gz")))
    return [r.numpy() for r in tf.data.TFRecordDataset(files, "GZIP")]


def _write_examples(folder: Path, records: list[bytes]) -> str:
    import tensorflow as tf

    (folder / "Split-eval").mkdir(parents=True)
    with tf.io.TFRecordWriter(str(folder / "Split-eval" / "data.gz"), "GZIP") as writer:
        for record in records:
            writer.write(record)
    return str(folder)


def _marker(blessing: str) -> list[str]:
    return sorted(os.listdir(blessing))


def test_demo_model_is_infra_blessed(tmp_path, trained, ingested):
    result = infra_validate.run(trained.model, ingested.examples, str(tmp_path / "blessing"))
    assert result.blessed, result.reason
    assert _marker(str(tmp_path / "blessing")) == ["INFRA_BLESSED", "infra_validation.json"]
    found = InfraValidation.read(str(tmp_path / "blessing"))
    assert found == result  # what run() returns is what the blessing holds
    by_name = {s["signature"]: s for s in found.signatures}
    # every exported signature was queried, each with serialized tf.Examples
    assert set(by_name) == {"serving_default", "transform_features"}
    assert by_name["serving_default"]["request"] == "serialized tf.Example"
    assert list(by_name["serving_default"]["outputs"].values()) == [[3]]  # 3 species
    assert by_name["serving_default"]["latency_ms"]["p50"] > 0
    assert found.examples == 10 and found.load_seconds > 0


@pytest.mark.slow  # a further model server run; test_demo_model_is_infra_blessed stays
def test_model_that_fails_on_real_examples_is_refused_naming_the_example(
    tmp_path, ingested, caplog
):
    caplog.set_level("INFO", logger="tfkfp")
    import tensorflow as tf

    model = strict_model(tmp_path / "strict", ingested)
    records = _eval_records(ingested.examples)
    missing = [
        i
        for i, r in enumerate(records)
        if not tf.train.Example.FromString(r).features.feature["sex"].bytes_list.value
    ]
    assert missing, "the eval split has no example without `sex`"
    result = infra_validate.run(
        model, ingested.examples, str(tmp_path / "blessing"), num_examples=missing[0] + 1
    )
    assert result.blessed is False
    assert _marker(str(tmp_path / "blessing")) == ["INFRA_NOT_BLESSED", "infra_validation.json"]
    reason = result.reason
    assert "\n" not in reason
    assert f"signature serving_default refused example {missing[0]} " in reason
    assert "sex" in reason  # the model's own error names the feature
    assert any(reason in r.getMessage() for r in caplog.records)
    # the pusher's second gate: nothing pushed, said in one line
    blessed = tmp_path / "eval-blessing"
    blessed.mkdir()
    (blessed / "BLESSED").write_text("")
    pushed = pusher.run(
        model, str(blessed), str(tmp_path / "serving"), infra_blessing=str(tmp_path / "blessing")
    )
    assert pushed.pushed is False and not (tmp_path / "serving").exists()


def test_missing_vocabulary_asset_fails_the_load(tmp_path, ingested):
    import tensorflow as tf

    vocab = tmp_path / "vocab.txt"
    vocab.write_text("Biscoe\nDream\nTorgersen\n")

    class WithVocab(tf.Module):
        def __init__(self):
            super().__init__()
            init = tf.lookup.TextFileInitializer(
                str(vocab), tf.string, tf.lookup.TextFileIndex.WHOLE_LINE,
                tf.int64, tf.lookup.TextFileIndex.LINE_NUMBER,
            )  # fmt: skip
            self.table = tf.lookup.StaticHashTable(init, -1)

        @tf.function(input_signature=[tf.TensorSpec([None], tf.string)])
        def serve(self, examples):
            spec = {"island": tf.io.FixedLenFeature([1], tf.string)}
            return {"island_id": self.table.lookup(tf.io.parse_example(examples, spec)["island"])}

    module = WithVocab()
    model = tmp_path / "model"
    tf.saved_model.save(module, str(model), signatures={"serving_default": module.serve})
    os.remove(model / "assets" / "vocab.txt")
    result = infra_validate.run(str(model), ingested.examples, str(tmp_path / "blessing"))
    assert result.blessed is False
    assert result.reason.startswith("the model did not load: ")
    assert "vocab.txt" in result.reason and "\n" not in result.reason


def test_raw_feature_signature_gets_json_instances(tmp_path):
    import tensorflow as tf

    class TwoForms(tf.Module):
        @tf.function(input_signature=[tf.TensorSpec([None], tf.string)])
        def serve(self, examples):
            x = tf.io.parse_example(examples, {"x": tf.io.FixedLenFeature([], tf.float32)})["x"]
            return {"y": x * 3.0}

        @tf.function(
            input_signature=[tf.TensorSpec([None], tf.float32), tf.TensorSpec([None], tf.string)]
        )
        def raw(self, x, name):
            return {"y": x * 3.0, "n": tf.strings.length(name)}

    module = TwoForms()
    tf.saved_model.save(
        module,
        str(tmp_path / "model"),
        signatures={"serving_default": module.serve, "raw": module.raw},
    )
    records = []
    for i in range(4):
        example = tf.train.Example()
        example.features.feature["x"].float_list.value.append(float(i))
        example.features.feature["name"].bytes_list.value.append(b"p" * (i + 1))
        records.append(example.SerializeToString())
    examples = _write_examples(tmp_path / "examples", records)
    result = infra_validate.run(str(tmp_path / "model"), examples, str(tmp_path / "blessing"))
    assert result.blessed, result.reason
    forms = {s["signature"]: s["request"] for s in result.signatures}
    assert forms == {"raw": "JSON instances", "serving_default": "serialized tf.Example"}


@pytest.mark.slow  # a further model server run; test_demo_model_is_infra_blessed stays
def test_time_limit_refuses_a_model_that_does_not_answer_in_time(tmp_path, trained, ingested):
    result = infra_validate.run(
        trained.model, ingested.examples, str(tmp_path / "blessing"), timeout_seconds=0.2
    )
    assert result.blessed is False
    assert "no answer within timeout_seconds 0.2" in result.reason


def test_model_without_serving_default_is_an_input_error(tmp_path, ingested):
    import tensorflow as tf

    class Other(tf.Module):
        @tf.function(input_signature=[tf.TensorSpec([None], tf.string)])
        def other(self, examples):
            return {"n": tf.strings.length(examples)}

    module = Other()
    tf.saved_model.save(module, str(tmp_path / "model"), signatures={"other": module.other})
    with pytest.raises(InputError, match="model: the SavedModel has no serving_default"):
        infra_validate.run(str(tmp_path / "model"), ingested.examples, str(tmp_path / "blessing"))
    assert not (tmp_path / "blessing").exists()


@pytest.mark.slow  # a further model server run; test_demo_model_is_infra_blessed stays
def test_pusher_pushes_an_infra_blessed_model_with_its_model_card(tmp_path, trained, ingested):
    from tfkfp.containers import evaluator
    from tfkfp.containers.push import model_card
    from tfkfp.pipelines.penguins.pipeline import EVAL_CONFIG

    evaluation = evaluator.run(
        model=trained.model,
        examples=ingested.examples,
        eval_config=EVAL_CONFIG,
        evaluation=str(tmp_path / "evaluation"),
        blessing=str(tmp_path / "blessing"),
        report=str(tmp_path / "report.md"),
        slice_chart=str(tmp_path / "slices.html"),
        schema=ingested.schema,
    )
    assert evaluation.blessed, evaluation.reason
    infra = infra_validate.run(trained.model, ingested.examples, str(tmp_path / "infra"))
    assert infra.blessed
    pushed = pusher.run(
        trained.model,
        str(tmp_path / "blessing"),
        str(tmp_path / "serving"),
        infra_blessing=str(tmp_path / "infra"),
        run_id="run-123",
        run_name="{{$.pipeline_job_name}}",  # a placeholder nobody resolved: unknown
        pipeline_name="penguins",
    )
    assert pushed.pushed is True
    version = pushed.pushed_uri
    assert {"PUSHED.json", "model_card.json", "model_card.md"} <= set(os.listdir(version))
    card = model_card.read(version)
    assert card.content_hash == pushed.content_hash and card.source == trained.model
    assert card.kfp == {"run_id": "run-123", "run_name": "unknown", "pipeline_name": "penguins"}
    # called without the model artifact's metadata: every such fact says unknown, none is null
    assert card.data == {
        "fingerprint": "unknown",
        "rows": {"train": "unknown", "eval": "unknown"},
    }
    assert card.module_file == {"ref": "unknown", "sha256": "unknown"}
    assert card.hyperparameters == "unknown"
    ev = card.evaluation
    assert ev["blessed"] is True and ev["metrics"] == pytest.approx(evaluation.metrics)
    assert "Overall" in ev["slices"] and len(ev["slices"]) > 1  # per island too
    assert ev["thresholds"] == evaluation.thresholds and ev["baseline_note"]
    assert card.infra_validation["blessed"] is True
    assert card.packages["tensorflow"] and card.image
    text = (Path(version) / "model_card.md").read_text()
    assert "run-123" in text and "Blessed: **True**" in text
    assert all(f"| Overall | {name} |" in text for name in evaluation.metrics), text
    # the same model pushed again keeps its version and its card
    again = pusher.run(trained.model, str(tmp_path / "blessing"), str(tmp_path / "serving"))
    assert again.pushed_uri == version and model_card.read(version) == card
    # the versions listing stays as it was: the card is no part of the version's marker
    from tfkfp.cli import versions as cli

    [row] = cli.list_versions(str(tmp_path / "serving"))
    assert row["complete"] and row["content_hash"] == pushed.content_hash
    assert row["model_card"] == card.to_dict()
    line = cli._card_line(row, card)
    assert "run run-123; pipeline penguins; blessed True (" in line and "infra True" in line


@pytest.fixture(scope="module")
def small_model(tmp_path_factory):
    from tests.helpers.serving_models import body_mass, penguin_model

    return penguin_model(
        str(tmp_path_factory.mktemp("small") / "model"), lambda p: {"mass": body_mass(p)}
    )


@pytest.mark.parametrize(
    "name, value, expected",
    [
        (
            "timeout_seconds",
            1e12,
            r"timeout_seconds: expected a number of seconds in \(0, 86400\], got 1e\+12",
        ),
        ("timeout_seconds", float("nan"), r"timeout_seconds: expected .* in \(0, 86400\], got nan"),
        ("timeout_seconds", float("inf"), r"timeout_seconds: expected .* in \(0, 86400\], got inf"),
        ("timeout_seconds", 0.0, r"timeout_seconds: expected .* in \(0, 86400\], got 0$"),
        ("max_latency_ms", float("nan"), r"max_latency_ms: expected 0 \(not checked\) or a finite"),
        ("max_latency_ms", -1.0, r"max_latency_ms: expected 0 \(not checked\) or a finite"),
        ("max_latency_ms", float("inf"), r"max_latency_ms: expected 0 \(not checked\) or a finite"),
    ],
)
def test_out_of_range_numbers_are_one_line(
    tmp_path, small_model, ingested, capsys, name, value, expected
):
    import re

    line = one_line_error(
        capsys,
        infra_validate.run,
        model=small_model,
        examples=ingested.examples,
        blessing=str(tmp_path / "blessing"),
        **{name: value},
    )
    assert re.match(f"error: {expected}", line), line
    assert not (tmp_path / "blessing").exists()


def test_the_largest_timeout_is_accepted(tmp_path, small_model, ingested):
    result = entrypoint(
        infra_validate.run,
        model=small_model,
        examples=ingested.examples,
        blessing=str(tmp_path / "blessing"),
        timeout_seconds=infra_validate.MAX_TIMEOUT_SECONDS,
    )
    assert result.blessed, result.reason


@pytest.mark.parametrize(
    "content, message",
    [
        (None, r"infra_blessing: no infra_validation.json in "),
        ('{"blessed": tru', r"infra_blessing: .*infra_validation.json is not readable JSON"),
        ('{"blessed": true}', r"infra_blessing: .*infra_validation.json is not infra_validate's"),
    ],
)
def test_a_damaged_infra_validation_json_is_one_line(tmp_path, content, message):
    if content is not None:
        (tmp_path / "infra_validation.json").write_text(content)
    with pytest.raises(InputError, match=message):
        InfraValidation.read(str(tmp_path))


def test_the_serving_process_finding_read_back_as_written(tmp_path):
    """The fresh process's handoff: read() gives what write() wrote, a damaged file is named."""
    path = str(tmp_path / "found.json")
    served = infra_validate.Served(load_seconds=1.5, signatures=[{"signature": "serving_default"}])
    served.write(path)
    assert infra_validate.Served.read(path) == served and not os.path.exists(path + ".tmp")
    (tmp_path / "found.json").write_text('{"load_secs": 1}')
    with pytest.raises(RuntimeError, match=f"^{path} is not the serving process's finding"):
        infra_validate.Served.read(path)
