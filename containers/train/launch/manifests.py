"""The manifests shipped in tfkfp/manifests/ and the names of launched jobs."""

from __future__ import annotations

import hashlib
from importlib import resources
from typing import Any


def manifest(name: str) -> dict[str, Any]:
    """A YAML manifest shipped in tfkfp/manifests/ (the first document)."""
    import yaml

    text = resources.files("tfkfp").joinpath("manifests", name).read_text()
    return next(yaml.safe_load_all(text))


def job_name(stage: str, model_uri: str) -> str:
    """The same name for every attempt of one task (its output URI): a DNS-1035 label."""
    return f"tfkfp-{stage}-{hashlib.sha256(model_uri.encode()).hexdigest()[:10]}"
