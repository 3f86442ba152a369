"""The one-line contract, asserted on a stage called the way its component calls it."""

from collections.abc import Callable
from typing import Any

import pytest

from tfkfp.containers.runtime import entrypoint


def one_line_error(capsys, stage: Callable[..., Any], /, **kwargs: Any) -> str:
    """`entrypoint(stage, **kwargs)` must exit 2 with exactly one `error:` line; returns it."""
    capsys.readouterr()  # what earlier calls printed is not this call's
    with pytest.raises(SystemExit) as exited:
        entrypoint(stage, **kwargs)
    assert exited.value.code == 2
    err = capsys.readouterr().err
    lines = [ln for ln in err.splitlines() if ln.startswith("error:")]
    assert len(lines) == 1, err[-3000:]
    return lines[0]
