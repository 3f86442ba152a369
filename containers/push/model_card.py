"""A model card beside each pushed version's PUSHED.json: `model_card.md` and `model_card.json`.

What the pusher knows when it pushes: the version and its content hash, the KFP run and
pipeline (parameters the pipeline fills with KFP's placeholders), the data fingerprint, module
file hash, hyperparameters and rows per split (the model artifact's KFP metadata: the trainer
carries them on from its examples), the evaluator's blessing (metrics per slice, thresholds
and their results, the baseline and why it was chosen), infra_validate's result, the package
versions and the image. A fact nobody handed on reads "unknown", never null. Written into
the version before its marker, so a complete version always has its card.
Imports no TensorFlow.
"""

from __future__ import annotations

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


def facts(
    result: dict[str, Any],
    model: str,
    blessing: str,
    infra_blessing: str | None,
    model_metadata: dict[str, Any] | None = None,
    kfp: dict[str, str] | None = None,
) -> dict[str, Any]:
    """Everything the card says, as JSON-ready data.

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
    return {
        "version": result["version"],
        "uri": result["pushed_uri"],
        "content_hash": result["content_hash"],
        "source": model,
        "kfp": kfp,
        "data": {
            "fingerprint": known(meta.get("data_fingerprint")),
            "rows": {split: known(rows.get(split)) for split in ("train", "eval")}
            | {split: n for split, n in rows.items() if split not in ("train", "eval")},
        },
        "module_file": {
            "ref": known(meta.get("module_file")),
            "sha256": known(meta.get("module_file_sha256")),
        },
        # {} when run_fn got none (a fact); unknown when no trainer metadata came with the model
        "hyperparameters": meta["hyperparameters"] if "hyperparameters" in meta else UNKNOWN,
        "evaluation": _evaluation(evaluation),
        "infra_validation": None
        if infra is None
        else {
            "blessed": infra.blessed,
            "reason": infra.reason,
            "load_seconds": infra.load_seconds,
            "signatures": infra.signatures,
        },
        "packages": _versions(),
        "python": platform.python_version(),
        "image": os.environ.get("TFKFP_IMAGE")
        or f"tfkfp:{__version__} (default tag; TFKFP_IMAGE unset)",
    }


def markdown(card: dict[str, Any]) -> str:
    """The card as Markdown."""
    ev = card["evaluation"]
    lines = [
        f"# Model card: version {card['version']}",
        "",
        f"- Location: `{card['uri']}` (content sha256 `{card['content_hash']}`)",
        f"- Source: `{card['source']}`",
        f"- KFP run: {card['kfp']['run_id']} ({card['kfp']['run_name']}); pipeline: "
        f"{card['kfp']['pipeline_name']}",
        f"- Data: fingerprint `{card['data']['fingerprint']}`; rows "
        + ", ".join(f"{split} {n}" for split, n in card["data"]["rows"].items()),
        f"- Module file: `{card['module_file']['ref']}` ({card['module_file']['sha256']})",
        "- Hyperparameters: "
        + (
            json.dumps(card["hyperparameters"], sort_keys=True)
            if isinstance(card["hyperparameters"], dict)
            else str(card["hyperparameters"])
        ),
        f"- Image: `{card['image']}`; Python {card['python']}",
        "- Packages: " + ", ".join(f"{k} {v}" for k, v in card["packages"].items()),
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
                f"| {slice_name} | {name} | {values.get('candidate')} | {values.get('baseline')} |"
            )
    infra = card["infra_validation"]
    lines += ["", "## Infra validation", ""]
    lines.append(
        "not run" if infra is None else f"blessed: **{infra['blessed']}** ({infra['reason']})"
    )
    return "\n".join(lines) + "\n"


def files(card: dict[str, Any]) -> dict[str, bytes]:
    """The card's files in a version, by name: model_card.json and model_card.md."""
    return {
        CARD_JSON: json.dumps(card, indent=1).encode("utf-8"),
        CARD_MD: markdown(card).encode("utf-8"),
    }


class DamagedCard(InputError):
    """A version's model_card.json that does not parse: `what` is the line without the input.

    `tfkfp versions` lists `what` among a version's damages; the pusher rewrites the card.
    """

    def __init__(self, name: str, what: str):
        super().__init__(f"{name}: {what}")
        self.what = what


def read(version_uri: str, name: str = "destination") -> dict[str, Any] | None:
    """A version's card, None when it has none; DamagedCard naming a card that does not parse.

    `name` is the input the version came from, first word of the one-line errors.
    """
    uri = storage.join(version_uri, CARD_JSON)
    if storage.stat(uri, name) is None:
        return None
    try:
        card = json.loads(storage.read_bytes(uri, name))
    except (ValueError, UnicodeDecodeError) as err:
        raise DamagedCard(name, f"{uri} is not valid JSON ({err})") from None
    if not isinstance(card, dict):
        raise DamagedCard(name, f"{uri} is not a model card (expected a JSON object)")
    return card
