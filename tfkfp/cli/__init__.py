"""`tfkfp`: compile, run locally, upload and submit pipelines; compile components; run the demo.

Exit codes: 0 ok, 2 bad usage or input, 1 failure.

The argparse front end maps each command to the module of this package that declares its
arguments (`add_arguments`) and runs it (`handle`), as pip and the KFP CLI do; a command's
module is imported only when that command is parsed, so `tfkfp --help` loads none of them
(nor kfp or TensorFlow).
"""

from __future__ import annotations

import argparse
import importlib
import sys

# command -> (its module in tfkfp.cli, one line for `tfkfp --help`)
COMMANDS = {
    "compile": ("pipelines", "compile a pipeline to KFP YAML"),
    "compile-components": ("components", "regenerate components/*.yaml"),
    "run": ("pipelines", "run a pipeline locally with kfp.local"),
    "upload": ("cluster", "upload a compiled pipeline (or a new version of it) to KFP"),
    "submit": ("cluster", "start a run of a compiled pipeline on KFP"),
    "demo": ("demo", "run the penguin demo end to end locally"),
    "schema": ("schema", "write the schema ingest infers for DATA, to review and commit"),
    "versions": ("versions", "list the versions under a push destination"),
    "images": ("images", "build the tfkfp container images"),
}


def build_parser(argv: list[str] | None = None, every: bool = False) -> argparse.ArgumentParser:
    """The CLI's parser: the arguments of the command named in `argv` (or of `every` command,
    for the docs) come from that command's module."""
    parser = argparse.ArgumentParser(prog="tfkfp", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    named = next((a for a in argv or () if not a.startswith("-")), None)
    for name, (module_name, summary) in COMMANDS.items():
        # "resolve": a command's module may declare its own -h (`tfkfp run PIPELINE --help`).
        p = sub.add_parser(name, help=summary, conflict_handler="resolve")
        if every or name == named:
            module = importlib.import_module(f"tfkfp.cli.{module_name}")
            module.add_arguments(name, p)
            p.set_defaults(handle=module.handle)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = build_parser(argv).parse_args(argv)
    from tfkfp.cli.common import UsageError
    from tfkfp.containers.runtime import InputError, setup_logging

    setup_logging()
    try:
        return args.handle(args.command, args) or 0
    except (UsageError, InputError) as err:
        print(f"tfkfp: error: {err}", file=sys.stderr)
        return 2
    except RuntimeError as err:
        local = sys.modules.get("tfkfp.local")  # loaded only by the commands that run pipelines
        if local is not None and isinstance(err, local.ValidationStopped | local.StageError):
            print(f"tfkfp: error: {err}", file=sys.stderr)
            return 2
        # kfp.local raises RuntimeError when a task fails; the task's log above says why.
        print(f"tfkfp: error: {_plain(str(err))}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        # A local run's task was interrupted and cleaned up its staged outputs (tfkfp.warm).
        print("tfkfp: interrupted; the running task published nothing", file=sys.stderr)
        return 130


def _plain(text: str) -> str:
    """Text without the terminal colour codes kfp.local puts around task names."""
    import re

    return re.sub(r"\x1b\[[0-9;]*m", "", text)
