"""infra_validate's finding as written into its blessing: `infra_validation.json`.

The stage writes it (`InfraValidation.write`), the model card reads it back (`read`): the file
is never read by string keys elsewhere. Imports nothing heavy: the pusher reads it without
TensorFlow.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field, fields
from typing import Any

from tfkfp.containers.runtime import InputError
from tfkfp.containers.store.layout import INFRA_FILE


@dataclass(frozen=True)
class InfraValidation:
    """What infra_validate found: its verdict, what it sent, what each signature answered.

    Attributes:
        blessed: Whether the model loaded and every signature answered every example.
        reason: The verdict in one line (the first refusal, or what answered).
        examples: Examples sent to every signature.
        split: The split they came from.
        load_seconds: Time the fresh process took to load the model; None if it did not.
        wall_seconds: The stage's time, start to verdict.
        signatures: Per signature: `signature`, `request` (its form), and either `outputs`
            (shapes without the batch) and `latency_ms` (`p50`, `max`), or `refused` (the
            example's index, None when no single example) and `error`.
    """

    blessed: bool
    reason: str
    examples: int
    split: str
    load_seconds: float | None
    wall_seconds: float
    signatures: list[dict[str, Any]] = field(default_factory=list)

    def write(self, folder: str) -> str:
        """Writes `infra_validation.json` into a (staging) blessing folder; returns its path."""
        path = os.path.join(folder, INFRA_FILE)
        with open(path, "w", encoding="utf-8") as fh:
            json.dump(asdict(self), fh, indent=1)
        return path

    @classmethod
    def read(cls, folder: str, what: str = "infra_blessing") -> InfraValidation:
        """The finding in an infra blessing folder; one line naming `what` if absent or damaged."""
        path = os.path.join(folder, INFRA_FILE)
        try:
            with open(path, encoding="utf-8") as fh:
                data = json.load(fh)
        except FileNotFoundError:
            raise InputError(f"{what}: no {INFRA_FILE} in {folder}") from None
        except (OSError, ValueError) as err:  # ValueError: cut short, not UTF-8
            raise InputError(f"{what}: {path} is not readable JSON ({err})") from None
        names = [f.name for f in fields(cls)]
        if not isinstance(data, dict) or not all(n in data for n in names[:-1]):
            raise InputError(f"{what}: {path} is not infra_validate's record (keys {names})")
        return cls(**{n: data[n] for n in names if n in data})

    @classmethod
    def read_if_present(cls, folder: str | None, what: str = "infra_blessing"):
        """As `read`, None when there is no folder or no file in it (no infra check ran)."""
        if not folder or not os.path.isfile(os.path.join(folder, INFRA_FILE)):
            return None
        return cls.read(folder, what)
