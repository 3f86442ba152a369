"""Enumerated parameters in compiled YAML: KFP's `literals`, from each stage's `CHOICES`.

The pipeline spec lists the values a parameter may take (`ParameterSpec.literals`: the UI
offers them as a dropdown and the backend refuses any other value), but kfp 2.17's SDK writes
them for no annotation (`typing.Literal` is taken for an artifact type:
tests/test_components.py). The stages already declare their choices once (`CHOICES` in
containers/<stage>.py, the same tuples their checks use); this writes them into the compiled
spec: on the stage's own component and on every parameter of an enclosing DAG or of the
pipeline that feeds one, as long as everything it feeds agrees.
"""

from __future__ import annotations

import importlib
from typing import Any


def stage_choices() -> dict[str, dict[str, tuple[str, ...]]]:
    """{component name: {parameter: values}} for every stage that declares CHOICES."""
    from tfkfp.components import STAGES

    found = {}
    for component in STAGES:
        module = importlib.import_module(f"tfkfp.containers.{component.name.replace('-', '_')}")
        choices = getattr(module, "CHOICES", {})
        if choices:
            found[component.name] = choices
    return found


def _stage_of(key: str, stages: dict[str, Any]) -> str | None:
    """The stage a `comp-<name>` or `comp-<name>-<n>` component key runs, None for others."""
    name = key.removeprefix("comp-")
    for stage in stages:
        if name == stage or (name.startswith(f"{stage}-") and name[len(stage) + 1 :].isdigit()):
            return stage
    return None


def add_literals(spec: dict[str, Any], stages: dict[str, dict[str, tuple[str, ...]]]) -> int:
    """Adds `literals` to the spec's parameters (in place); returns how many it set."""
    components = spec.get("components", {})
    owners = {"root": spec["root"], **components}
    found: dict[tuple[str, str], tuple[str, ...]] = {}
    for key, component in components.items():
        stage = _stage_of(key, stages)
        if stage is None or "executorLabel" not in component:
            continue
        params = component.get("inputDefinitions", {}).get("parameters", {})
        for name, values in stages[stage].items():
            if name in params:
                found[(key, name)] = tuple(values)
    # Up through every DAG until nothing changes: a parameter takes the values of what it feeds.
    changed = True
    conflicting: set[tuple[str, str]] = set()
    while changed:
        changed = False
        for owner, body in owners.items():
            for task in body.get("dag", {}).get("tasks", {}).values():
                ref = task.get("componentRef", {}).get("name", "")
                for param, source in task.get("inputs", {}).get("parameters", {}).items():
                    upper = source.get("componentInputParameter")
                    values = found.get((ref, param))
                    if upper is None or values is None or (owner, upper) in conflicting:
                        continue
                    known = found.get((owner, upper))
                    if known is None:
                        found[(owner, upper)] = values
                        changed = True
                    elif known != values:  # feeds two stages with different choices
                        conflicting.add((owner, upper))
                        del found[(owner, upper)]
                        changed = True
    count = 0
    for (owner, name), values in sorted(found.items()):
        params = owners[owner].get("inputDefinitions", {}).get("parameters", {})
        if name in params:
            params[name]["literals"] = list(values)
            count += 1
    return count


def set_literals(path: str) -> int:
    """Rewrites a compiled pipeline or component YAML with its enumerated parameters' literals."""
    import yaml

    with open(path) as fh:
        text = fh.read()
    docs = list(yaml.safe_load_all(text))
    count = add_literals(docs[0], stage_choices())
    if count:
        # kfp's header comment (the pipeline's inputs and defaults) stays on top
        lines = text.splitlines(keepends=True)
        header = "".join(line for line in lines[: _header_end(lines)])
        with open(path, "w") as fh:
            fh.write(header + yaml.safe_dump_all(docs, sort_keys=True))
    return count


def _header_end(lines: list[str]) -> int:
    for i, line in enumerate(lines):
        if not line.startswith("#"):
            return i
    return len(lines)
