"""A model card beside each pushed version's PUSHED.json: `model_card.md` and `model_card.json`.

What the pusher knows when it pushes: the version and its content hash, the KFP run and
pipeline (parameters the pipeline fills with KFP's placeholders), the data fingerprint, module
file hash, hyperparameters and rows per split (the model artifact's KFP metadata: the trainer
carries them on from its examples), the evaluator's blessing (metrics per slice, thresholds
and their results, the baseline and why it was chosen), infra_validate's result, the package
versions and the image. A fact nobody handed on reads "unknown", never null. Written into
the version before its marker, so a complete version always has its card. `ModelCard` writes
(`files`) and reads (`read`) it: the card is never read by string keys elsewhere.
Imports no TensorFlow.
"""

from __future__ import annotations

import dataclasses
import json
import os
import platform
from importlib import metadata
from typing import Any

from tfkfp.containers.evaluation.blessing import Evaluation
from tfkfp.containers.evaluation.infra_blessing import InfraValidation
from tfkfp.containers.runtime import InputError
from tfkfp.containers.store import storage
from tfkfp.containers.store.layout import CARD_JSON, CARD_MD
from tfkfp.containers.train.hyperparameters import whole_numbers

PACKAGES = (
    "tfkfp",
    "tensorflow",
    "tensorflow-cpu",
    "tensorflow-transform",
    "tensorflow-model-analysis",
    "apache-beam",
    "tf_keras",
    "keras",
    "kfp",
)
# What the card says of a fact nobody handed on.
UNKNOWN = "unknown"


def known(value: Any) -> Any:
    """`value`, or "unknown" when empty or a KFP placeholder left unresolved (`{{$.…}}`)."""
    if value is None or value == "" or value == {}:
        return UNKNOWN
    if isinstance(value, str) and value.startswith("{{$"):
        return UNKNOWN
    return value


def _evaluation(found: Evaluation | None) -> dict[str, Any]:
    """The card's evaluation section; nulls and empties for a blessing without blessing.json."""
    if found is None:
        return {
            "blessed": None,
            "reason": None,
            "data": None,
            "metrics": {},
            "slices": {},
            "thresholds": [],
            "baseline": None,
            "baseline_note": None,
        }
    return {
        "blessed": found.blessed,
        "reason": found.reason,
        "data": found.data,
        "metrics": found.metrics,
        "slices": found.slices,
        "thresholds": found.thresholds,
        "baseline": found.baseline,
        "baseline_note": found.baseline_note,
    }


def _versions() -> dict[str, str]:
    found = {}
    for name in PACKAGES:
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return found


@dataclasses.dataclass(frozen=True)
class ModelCard:
    """A version's `model_card.json` (and what `model_card.md` shows).

    The sections stay JSON objects as the card has always held them (their keys below); a fact
    nobody handed on reads "unknown".

    Attributes:
        version: The version's number.
        uri: The version's URI.
        content_hash: sha256 over the model's files, as in the version's marker.
        source: The model folder pushed.
        kfp: run_id, run_name, pipeline_name.
        data: fingerprint, and rows per split.
        module_file: ref (path or module) and sha256.
        hyperparameters: What run_fn got ({} for none), or "unknown".
        evaluation: The evaluator's blessed, reason, data, metrics, slices, thresholds,
            baseline, baseline_note (nulls and empties without a blessing.json).
        infra_validation: infra_validate's blessed, reason, load_seconds, signatures; None
            when it did not run.
        packages: Package versions by name.
        python: The Python version.
        image: The container image (TFKFP_IMAGE), or the default tag.
    """

    version: int
    uri: str
    content_hash: str
    source: str
    kfp: dict[str, str]
    data: dict[str, Any]
    module_file: dict[str, str]
    hyperparameters: dict[str, Any] | str
    evaluation: dict[str, Any]
    infra_validation: dict[str, Any] | None
    packages: dict[str, str]
    python: str
    image: str

    def to_dict(self) -> dict[str, Any]:
        """The card as JSON-ready data, in the order the fields are written."""
        return dataclasses.asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=1)

    def markdown(self) -> str:
        """The card as Markdown."""
        ev, kfp, data = self.evaluation, self.kfp, self.data
        lines = [
            f"# Model card: version {self.version}",
            "",
            f"- Location: `{self.uri}` (content sha256 `{self.content_hash}`)",
            f"- Source: `{self.source}`",
            f"- KFP run: {kfp['run_id']} ({kfp['run_name']}); pipeline: {kfp['pipeline_name']}",
            f"- Data: fingerprint `{data['fingerprint']}`; rows "
            + ", ".join(f"{split} {n}" for split, n in data["rows"].items()),
            f"- Module file: `{self.module_file['ref']}` ({self.module_file['sha256']})",
            "- Hyperparameters: "
            + (
                json.dumps(self.hyperparameters, sort_keys=True)
                if isinstance(self.hyperparameters, dict)
                else str(self.hyperparameters)
            ),
            f"- Image: `{self.image}`; Python {self.python}",
            "- Packages: " + ", ".join(f"{k} {v}" for k, v in self.packages.items()),
            "",
            "## Evaluation",
            "",
            f"Blessed: **{ev['blessed']}** ({ev['reason']}). Data: `{ev['data']}`.",
            f"Baseline: `{ev['baseline'] or 'none'}` ({ev['baseline_note']}).",
            "",
            "| threshold | slices | result |",
            "| --- | --- | --- |",
        ]
        for row in ev["thresholds"]:
            what = f"{row.get('metric')} {row.get('kind', '')} {row.get('threshold', '')}".strip()
            lines.append(f"| {what} | {row.get('slices', '')} | {row.get('result', '')} |")
        lines += ["", "| slice | metric | candidate | baseline |", "| --- | --- | --- | --- |"]
        for slice_name, metrics in ev["slices"].items():
            for name, values in metrics.items():
                lines.append(
                    f"| {slice_name} | {name} | {values.get('candidate')} | "
                    f"{values.get('baseline')} |"
                )
        infra = self.infra_validation
        lines += ["", "## Infra validation", ""]
        lines.append(
            "not run" if infra is None else f"blessed: **{infra['blessed']}** ({infra['reason']})"
        )
        return "\n".join(lines) + "\n"

    def files(self) -> dict[str, bytes]:
        """The card's files in a version, by name: model_card.json and model_card.md."""
        return {
            CARD_JSON: self.to_json().encode("utf-8"),
            CARD_MD: self.markdown().encode("utf-8"),
        }

    @classmethod
    def from_json(cls, text: bytes | str, uri: str, name: str = "destination") -> ModelCard:
        """Parses a card; DamagedCard naming `uri` when it does not parse, is not a JSON
        object or lacks a field (every card tfkfp wrote has them all)."""
        try:
            data = json.loads(text)
        except (ValueError, UnicodeDecodeError) as err:
            raise DamagedCard(name, f"{uri} is not valid JSON ({err})") from None
        if not isinstance(data, dict):
            raise DamagedCard(name, f"{uri} is not a model card (expected a JSON object)")
        fields = [f.name for f in dataclasses.fields(cls)]
        missing = [f for f in fields if f not in data]
        if missing:
            raise DamagedCard(name, f"{uri} is not a model card (no {missing[0]!r})")
        return cls(**{f: data[f] for f in fields})

    @classmethod
    def read(cls, version_uri: str, name: str = "destination") -> ModelCard | None:
        """Version `version_uri`'s card, None when it has none; DamagedCard as `from_json`.

        `name` is the input the version came from, first word of the one-line errors.
        """
        uri = storage.join(version_uri, CARD_JSON)
        if storage.stat(uri, name) is None:
            return None
        return cls.from_json(storage.read_bytes(uri, name), uri, name)


def facts(
    result: dict[str, Any],
    model: str,
    blessing: str,
    infra_blessing: str | None,
    model_metadata: dict[str, Any] | None = None,
    kfp: dict[str, str] | None = None,
) -> ModelCard:
    """Everything the card says.

    Args:
        result: The push result (version, pushed_uri, content_hash).
        model: The model folder pushed.
        blessing: The evaluator's blessing folder.
        infra_blessing: infra_validate's blessing folder, or None.
        model_metadata: The model artifact's KFP metadata (the trainer's: module_file,
            module_file_sha256, hyperparameters, data_fingerprint, rows).
        kfp: run_id, run_name and pipeline_name as the pusher got them.
    """
    # not tfkfp.components: importing it builds every component, which kfp's runtime mode refuses
    from tfkfp import __version__

    evaluation = Evaluation.read_if_present(blessing)
    infra = InfraValidation.read_if_present(infra_blessing)
    # KFP's backend hands artifact metadata over as a protobuf Struct: 260 arrives as 260.0
    meta = whole_numbers(model_metadata or {})
    kfp = {key: known((kfp or {}).get(key)) for key in ("run_id", "run_name", "pipeline_name")}
    rows = meta.get("rows") if isinstance(meta.get("rows"), dict) else {}
    return ModelCard(
        version=result["version"],
        uri=result["pushed_uri"],
        content_hash=result["content_hash"],
        source=model,
        kfp=kfp,
        data={
            "fingerprint": known(meta.get("data_fingerprint")),
            "rows": {split: known(rows.get(split)) for split in ("train", "eval")}
            | {split: n for split, n in rows.items() if split not in ("train", "eval")},
        },
        module_file={
            "ref": known(meta.get("module_file")),
            "sha256": known(meta.get("module_file_sha256")),
        },
        # {} when run_fn got none (a fact); unknown when no trainer metadata came with the model
        hyperparameters=meta["hyperparameters"] if "hyperparameters" in meta else UNKNOWN,
        evaluation=_evaluation(evaluation),
        infra_validation=None
        if infra is None
        else {
            "blessed": infra.blessed,
            "reason": infra.reason,
            "load_seconds": infra.load_seconds,
            "signatures": infra.signatures,
        },
        packages=_versions(),
        python=platform.python_version(),
        image=os.environ.get("TFKFP_IMAGE")
        or f"tfkfp:{__version__} (default tag; TFKFP_IMAGE unset)",
    )


class DamagedCard(InputError):
    """A version's model_card.json that does not parse: `what` is the line without the input.

    `tfkfp versions` lists `what` among a version's damages; the pusher rewrites the card.
    """

    def __init__(self, name: str, what: str):
        super().__init__(f"{name}: {what}")
        self.what = what


def read(version_uri: str, name: str = "destination") -> ModelCard | None:
    """A version's card, None when it has none; DamagedCard naming a card that does not parse.

    `name` is the input the version came from, first word of the one-line errors.
    """
    return ModelCard.read(version_uri, name)
