"""`tfkfp compile-components`: the published component specs, components/*.yaml."""

from __future__ import annotations

import argparse
from pathlib import Path

COMPONENTS_DIR = Path(__file__).resolve().parents[2] / "components"


def compile_components(out_dir: Path = COMPONENTS_DIR) -> list[Path]:
    """Writes each component's spec as components/<stage>.yaml."""
    from kfp import compiler

    from tfkfp.components import STAGES
    from tfkfp.literals import set_literals

    written = []
    for component in STAGES:
        path = out_dir / f"{component.name}.yaml"
        compiler.Compiler().compile(component, str(path))
        set_literals(str(path))
        written.append(path)
    return written


def add_arguments(name: str, p: argparse.ArgumentParser) -> None:
    p.add_argument("--out-dir", help="where to write (default: the components/ folder)")


def handle(name: str, args: argparse.Namespace) -> int:
    for path in compile_components(Path(args.out_dir) if args.out_dir else COMPONENTS_DIR):
        print(path)
    return 0
