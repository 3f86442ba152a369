"""`tfkfp versions`: the versions under a push destination, with what made each."""

from __future__ import annotations

import argparse
import json
from datetime import UTC
from typing import Any


def list_versions(destination: str) -> list[dict[str, Any]]:
    """Each version under a push destination: number, complete, and what its marker records."""
    from datetime import datetime

    from tfkfp.containers import model_card, storage
    from tfkfp.containers.layout import PUSHED
    from tfkfp.containers.versions import iter_versions, storage_for

    storage.check(destination, "destination")
    store = storage_for(destination)
    rows = []
    for version in iter_versions(destination):
        row: dict[str, Any] = {"version": version.number, "complete": version.complete}
        if version.complete:
            where = storage.join(store.uri(version.number), PUSHED)
            marker = json.loads(storage.read_text(where, "destination"))
            pushed_at = marker.get("pushed_at")
            row.update(
                uri=store.uri(version.number),
                content_hash=marker["content_hash"],
                pushed_at=datetime.fromtimestamp(pushed_at, UTC).isoformat(timespec="seconds")
                if pushed_at
                else None,
                source=marker.get("source"),
                formats=[
                    name
                    for name, file in (
                        ("saved_model", "saved_model.pb"),
                        ("tflite", "model.tflite"),
                    )
                    if file in version.files
                ],
                model_card=model_card.read(store.uri(version.number)),
            )
        rows.append(row)
    return rows


def _card_line(row: dict[str, Any]) -> str:
    """A version's model card in a few words: run, pipeline, overall metrics, infra check."""
    card = row.get("model_card")
    if not card:
        return "  (no model card)"
    ev, infra = card["evaluation"], card["infra_validation"]
    metrics = ", ".join(f"{k}={v:.4g}" for k, v in sorted((ev.get("metrics") or {}).items()))
    parts = [
        f"run {card['kfp'].get('run_id') or '?'}",
        f"pipeline {card['kfp'].get('pipeline_name') or '?'}",
        f"blessed {ev.get('blessed')}" + (f" ({metrics})" if metrics else ""),
        f"infra {'not run' if infra is None else infra['blessed']}",
    ]
    return "  " + "; ".join(parts)


def command(destination: str, as_json: bool) -> int:
    """Prints one line per version (newest last), or every recorded fact as JSON."""
    rows = list_versions(destination)
    if as_json:
        print(json.dumps(rows, indent=1))
        return 0
    for row in rows:
        if not row["complete"]:
            print(f"{row['version']}  incomplete (no PUSHED.json)")
            continue
        print(
            f"{row['version']}  {row['pushed_at']}  {'+'.join(row['formats'])}  "
            f"sha256:{row['content_hash'][:12]}  from {row['source']}{_card_line(row)}"
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
