"""`tfkfp demo`: the penguin pipeline end to end, locally, and its summary."""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

from tfkfp import local
from tfkfp.cli.common import VERBOSE_HELP, require_runtime
from tfkfp.cli.pipelines import compile_pipeline, load_pipeline


def demo(
    serving_root: str = "serving/penguins",
    yaml_path: str = "build/penguins.yaml",
    verbose: bool = False,
) -> int:
    """Runs the penguin pipeline locally, pushes the model, compiles the YAML, prints a summary."""
    from importlib import resources

    from tfkfp.containers.evaluation.blessing import Evaluation
    from tfkfp.containers.push.destination import iter_versions
    from tfkfp.containers.store.layout import BLESSING_FILE
    from tfkfp.progress import Display

    pipeline = load_pipeline("penguins")
    data = str(resources.files("tfkfp.pipelines.penguins") / "data" / "penguins.csv")
    destination = os.path.abspath(serving_root)
    before = {v.number for v in iter_versions(destination) if v.complete}
    started = time.time()
    display = Display(verbose=verbose)
    arguments = {"data_uri": data, "push_destination": destination}
    try:
        local.run(pipeline, arguments, verbose=verbose, display=display)
    except local.ValidationStopped:
        validated = display.tasks.get("validate")
        print("\n== tfkfp demo: penguins ==")
        if validated and validated.result:
            print(f"data:          {validated.result['verdict']}")
        print("training:      skipped (validation stopped the run; nothing trained or pushed)")
        raise
    elapsed = time.time() - started
    compile_pipeline(pipeline, yaml_path)
    blessing = _newest_output("evaluator", "blessing", BLESSING_FILE)
    report = Evaluation.read(str(blessing.parent)) if blessing else None
    versions = [v for v in iter_versions(destination) if v.complete]
    latest = versions[-1] if versions else None
    print("\n== tfkfp demo: penguins ==")
    print(f"pipeline run:  {elapsed:.0f} s with kfp.local (SubprocessRunner)")
    for name, value in sorted(report.metrics.items() if report else ()):
        print(f"eval metric:   {name} = {value:.4f}")
    baseline = report.baseline if report else None
    note = report.baseline_note if report else ""
    print(f"baseline:      {baseline or f'none ({note})'}")
    validation = _newest_output("validate", "report", "")
    validated = display.tasks.get("validate")
    if validation and validated and validated.result:
        print(f"data:          {validated.result['verdict']} ({validation.resolve()})")
    print(
        f"blessed:       {report.blessed if report else None} ({report.reason if report else ''})"
    )
    markdown = _newest_output("evaluator", "report", "")
    if markdown:
        print(f"eval report:   {markdown.resolve()} (Markdown, as the KFP UI shows it)")
    pages = _pages(yaml_path)
    if pages:
        print(f"pictures:      {', '.join(pages)} (HTML, as the KFP UI shows them)")
    if report and report.blessed and latest is not None:
        state = "new version" if latest.number not in before else "same model as before"
        print(f"pushed model:  {os.path.join(destination, str(latest.number))} ({state})")
    else:
        print("pushed model:  none (not blessed)")
    print(f"pipeline YAML: {os.path.abspath(yaml_path)}")
    return 0


# The demo's HTML artifacts: (task, output) -> file name beside the compiled YAML.
PAGES = {("trainer", "curves"): "trainer_curves.html", ("evaluator", "slice_chart"): "slices.html"}


def _pages(yaml_path: str) -> list[str]:
    """Copies the newest run's HTML pages next to the YAML as .html files a browser opens."""
    import shutil

    copied = []
    for (task, output), name in PAGES.items():
        page = _newest_output(task, output, "")
        if page:
            target = os.path.join(os.path.dirname(os.path.abspath(yaml_path)), name)
            shutil.copyfile(page, target)
            copied.append(os.path.relpath(target))
    return copied


def _newest_output(
    task: str, output: str, filename: str, pipeline_root: str = "build/local_outputs"
) -> Path | None:
    runs = sorted(Path(pipeline_root).glob("*/"), key=lambda p: p.stat().st_mtime)
    for run_dir in reversed(runs):
        candidate = run_dir / task / output / filename
        if candidate.is_file():
            return candidate
    return None


def add_arguments(name: str, p: argparse.ArgumentParser) -> None:
    p.add_argument("-v", "--verbose", action="store_true", help=VERBOSE_HELP)


def handle(name: str, args: argparse.Namespace) -> int:
    require_runtime("demo")
    return demo(verbose=args.verbose)
