"""`tfkfp versions`: the versions under a push destination, with what made each."""

from __future__ import annotations

import argparse
import json
import math
from datetime import UTC
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from tfkfp.containers.push.model_card import ModelCard


def list_versions(destination: str) -> list[dict[str, Any]]:
    """Each version under a push destination: number, complete, and what its marker records."""
    return [row for row, _ in _rows(destination)]


def _rows(destination: str) -> list[tuple[dict[str, Any], ModelCard | None]]:
    """`list_versions`'s rows, each with the version's readable model card (None if none)."""
    from datetime import datetime

    from tfkfp.containers.push import model_card
    from tfkfp.containers.push.destination import destination as destination_at
    from tfkfp.containers.push.versions import Marker
    from tfkfp.containers.store import storage
    from tfkfp.containers.store.layout import CARD_JSON, PUSHED

    storage.check(destination, "destination")
    store = destination_at(destination)
    store.connect()
    rows = []
    for version in store.versions():
        row: dict[str, Any] = {"version": version.number, "complete": version.complete}
        card = None
        if version.complete:
            uri = store.uri(version.number)
            where = storage.join(uri, PUSHED)
            marker = Marker.read(where)
            raw, pushed_at, damaged = marker.pushed_at, None, []
            try:
                if _number(raw):
                    pushed_at = datetime.fromtimestamp(raw, UTC).isoformat(timespec="seconds")
            except (OverflowError, OSError, ValueError):
                pass
            if raw is not None and pushed_at is None:
                damaged.append(f"{where}: pushed_at is {raw!r}, not a Unix time")
            try:
                card = model_card.read(uri)
            except model_card.DamagedCard as err:
                card = None
                damaged.append(err.what)
            if card is not None and (why := _card_damage(card)):
                damaged.append(f"{storage.join(uri, CARD_JSON)}: {why}")
                card = None
            row.update(
                uri=uri,
                content_hash=marker.content_hash,
                pushed_at=pushed_at,
                source=marker.source,
                formats=[
                    name
                    for name, file in (
                        ("saved_model", "saved_model.pb"),
                        ("tflite", "model.tflite"),
                    )
                    if file in version.files
                ],
                model_card=card.to_dict() if card else None,
            )
            if damaged:
                row["damaged"] = damaged
        rows.append((row, card))
    return rows


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _card_damage(card: ModelCard) -> str:
    """What in a model card `tfkfp versions` cannot show, "" when nothing."""
    ev, kfp = card.evaluation, card.kfp
    if not isinstance(ev, dict) or not isinstance(kfp, dict):
        return "evaluation and kfp are not JSON objects"
    metrics = ev.get("metrics")
    if metrics is not None and not isinstance(metrics, dict):
        return f"evaluation.metrics is {metrics!r}, not an object"
    for name, value in (metrics or {}).items():
        if not _number(value):
            return f"metric {name} is {value!r}, not a number"
    infra = card.infra_validation
    if infra is not None and not isinstance(infra, dict):
        return f"infra_validation is {infra!r}, not an object"
    return ""


def _card_line(row: dict[str, Any], card: ModelCard | None) -> str:
    """A version's model card in a few words: run, pipeline, overall metrics, infra check."""
    if not card:
        return "  (no model card)" if not row.get("damaged") else ""
    ev, infra = card.evaluation, card.infra_validation
    metrics = ", ".join(f"{k}={v:.4g}" for k, v in sorted((ev.get("metrics") or {}).items()))
    parts = [
        f"run {card.kfp.get('run_id') or '?'}",
        f"pipeline {card.kfp.get('pipeline_name') or '?'}",
        f"blessed {ev.get('blessed')}" + (f" ({metrics})" if metrics else ""),
        f"infra {'not run' if infra is None else infra.get('blessed')}",
    ]
    return "  " + "; ".join(parts)


def command(destination: str, as_json: bool) -> int:
    """Prints one line per version (newest last), or every recorded fact as JSON."""
    rows = _rows(destination)
    if as_json:
        print(json.dumps([row for row, _ in rows], indent=1))
        return 0
    for row, card in rows:
        if not row["complete"]:
            print(f"{row['version']}  incomplete (no PUSHED.json)")
            continue
        print(
            f"{row['version']}  {row['pushed_at']}  {'+'.join(row['formats'])}  "
            f"sha256:{row['content_hash'][:12]}  from {row['source']}{_card_line(row, card)}"
            + "".join(f"  (damaged: {what})" for what in row.get("damaged", []))
        )
    return 0


def add_arguments(name: str, p: argparse.ArgumentParser) -> None:
    p.description = (
        "One line per version (newest last): number, pushed time, formats, content hash and "
        "source; --json for every recorded fact."
    )
    p.add_argument("destination", help="push destination: folder, gs://... or s3://...")
    p.add_argument("--json", action="store_true", help="print JSON")


def handle(name: str, args: argparse.Namespace) -> int:
    return command(args.destination, args.json)
