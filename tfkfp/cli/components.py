"""`tfkfp compile-components`: the published component specs, components/*.yaml."""

from __future__ import annotations

from pathlib import Path

COMPONENTS_DIR = Path(__file__).resolve().parents[2] / "components"


def compile_components(out_dir: Path = COMPONENTS_DIR) -> list[Path]:
    """Writes each component's spec as components/<stage>.yaml."""
    from kfp import compiler

    from tfkfp.components import STAGES

    written = []
    for component in STAGES:
        path = out_dir / f"{component.name}.yaml"
        compiler.Compiler().compile(component, str(path))
        written.append(path)
    return written
