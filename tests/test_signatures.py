"""One name per parameter: each component's spec against its stage's `run()` signature.

The rule, stage by stage (components.STAGES):
- every input and every artifact output of the component is a `run()` parameter of the same
  name (an artifact arrives as its local path), except the few the component body handles
  itself (COMPONENT_ONLY);
- `run()` may add `<artifact>_uri` (str, default ""): the artifact's URI for a remote Beam
  runner's workers, for artifacts of that component only (unless the component has a
  parameter of that name: a location given instead of the artifact, such as validate's
  previous_statistics_uri); and RUN_ONLY knobs for tests;
- defaults agree (a component's `[]`/`{}` is `run()`'s None: no mutable defaults there);
- `run()` accepts None exactly where the component's input is an optional artifact or an
  empty list/dict; artifact outputs are required;
- the component body calls `entrypoint(stage.run, ...)` passing parameters by those names;
- `run()` returns a dataclass (a union of them; None where a machine has nothing to report),
  frozen, so the component body reads its result by attribute, never by a string key.
"""

import ast
import dataclasses
import importlib
import inspect
import textwrap
import types
import typing
from typing import Any

import pytest
from kfp.dsl.types import type_utils

from tfkfp.components import STAGES

# Parameters the component body uses itself: they never reach run().
COMPONENT_ONLY = {
    # not read: an input only so that new data at the same data_uri is a new cache key
    "ingest": {"data_fingerprint"},
    "infer": {"data_fingerprint"},
    # filled by the component from run()'s result (KFP UI metadata)
    "evaluator": {"metrics", "classification_metrics", "slice_metrics"},
    "trainer": {"metrics"},
    "pusher": {"pushed_model"},
    "tuner": {"metrics"},
}
# run() parameters only tests set (with a default the component relies on).
# The pusher's model_metadata is the model artifact's KFP metadata, handed on by the body.
RUN_ONLY = {"pusher": {"retry_timeout", "lease", "model_metadata"}}
KFP_TYPES = {"String": str, "Integer": int, "Float": float, "Boolean": bool}
KFP_TYPES |= {"List": list, "Dict": dict}
# KFP fills a TaskConfig (its passthroughs); the body hands run() its fields as a dict.
KFP_TYPES |= {"TaskConfig": dict}
EMPTY = ([], {})


def _stage_run(component):
    # kfp spells a two-word stage with a hyphen (infra_validate -> infra-validate)
    return importlib.import_module(f"tfkfp.containers.{component.name.replace('-', '_')}").run


def _accepts_none(hint) -> bool:
    return type(None) in typing.get_args(hint)


def _accepts(hint, kind: type) -> bool:
    members = typing.get_args(hint) or (hint,)
    return any((typing.get_origin(m) or m) is kind for m in members)


@pytest.mark.parametrize("component", STAGES, ids=lambda c: c.name)
def test_component_and_run_share_names_defaults_and_optionality(component):
    spec = component.component_spec
    run = _stage_run(component)
    params = inspect.signature(run).parameters
    hints = typing.get_type_hints(run)
    skip = COMPONENT_ONLY.get(component.name, set())
    inputs = {n: i for n, i in (spec.inputs or {}).items() if n not in skip}
    outputs = {
        n: o
        for n, o in (spec.outputs or {}).items()
        if n not in skip and not type_utils.is_parameter_type(o.type)
    }
    artifacts = {n for n, i in inputs.items() if not type_utils.is_parameter_type(i.type)}
    artifacts |= set(outputs)
    # A component parameter of that name (ingest's schema_uri) is an ordinary parameter.
    uris = {f"{n}_uri" for n in artifacts} & set(params) - set(inputs)
    run_only = RUN_ONLY.get(component.name, set())
    assert set(params) - uris - run_only == set(inputs) | set(outputs), (
        f"{component.name}: run() parameters differ from the component's"
    )
    for name in uris:
        assert params[name].default == "" and hints[name] is str, name
    for name in run_only:
        assert params[name].default is not inspect.Parameter.empty, name
    for name in outputs:
        assert params[name].default is inspect.Parameter.empty, f"{name}: an output is required"
        assert not _accepts_none(hints[name]), f"{name}: an output is never None"
    for name, given in inputs.items():
        param, hint = params[name], hints[name]
        if name in artifacts:
            assert _accepts_none(hint) == given.optional, f"{name}: optional artifact?"
            want = None if given.optional else inspect.Parameter.empty
            assert param.default == want, f"{name}: default"
            continue
        assert _accepts(hint, KFP_TYPES[given.type]), f"{name}: {hint} vs {given.type}"
        if not given.optional:
            assert param.default is inspect.Parameter.empty, f"{name}: required in the component"
        elif given.default in EMPTY or given.default is None:
            assert param.default is None and _accepts_none(hint), f"{name}: empty is None"
        else:
            assert param.default == given.default, f"{name}: default"
            assert type(param.default) is type(given.default), f"{name}: default's type"
            assert not _accepts_none(hint), f"{name}: None where the component has no None"


@pytest.mark.parametrize("component", STAGES, ids=lambda c: c.name)
def test_component_body_passes_run_parameters_by_name(component):
    params = inspect.signature(_stage_run(component)).parameters
    tree = ast.parse(textwrap.dedent(inspect.getsource(component.python_func)))
    [call] = [
        node
        for node in ast.walk(tree)
        if isinstance(node, ast.Call) and getattr(node.func, "id", "") == "entrypoint"
    ]
    assert ast.unparse(call.args[0]) == "stage.run"
    passed = {k.arg for k in call.keywords}
    assert passed <= set(params), f"unknown run() parameters {passed - set(params)}"
    required = {n for n, p in params.items() if p.default is inspect.Parameter.empty}
    assert required <= passed, f"not passed: {required - passed}"
    for keyword in call.keywords:
        value = ast.unparse(keyword.value)
        if value.endswith((".path", ".path if " + keyword.arg + " else None")):
            assert value.startswith(f"{keyword.arg}.path"), f"{keyword.arg} = {value}"
        if value.endswith(".uri") or ".uri if " in value:
            assert keyword.arg == value.split(".uri")[0] + "_uri", f"{keyword.arg} = {value}"


# Result classes owned by the launcher's rework (h-launch), frozen there.
NOT_YET_FROZEN = {"LaunchResult", "TunerResult"}


def _result_problems(function) -> list[str]:
    """Why `function`'s return annotation is not a typed result ([] when it is)."""
    hint = typing.get_type_hints(function).get("return", inspect.Parameter.empty)
    if hint is inspect.Parameter.empty:
        return ["no return annotation"]
    union = typing.get_origin(hint) in (typing.Union, types.UnionType)
    members = [m for m in (typing.get_args(hint) if union else (hint,)) if m is not type(None)]
    if not members:
        return ["returns None"]
    problems = []
    for member in members:
        kind = typing.get_origin(member) or member  # LaunchResult[TrainerResult] -> LaunchResult
        if not (isinstance(kind, type) and dataclasses.is_dataclass(kind)):
            problems.append(f"returns {member!r}, not a dataclass")
        elif not kind.__dataclass_params__.frozen and kind.__name__ not in NOT_YET_FROZEN:
            problems.append(f"returns {kind.__name__}, a dataclass that is not frozen")
    return problems


@pytest.mark.parametrize("component", STAGES, ids=lambda c: c.name)
def test_run_returns_a_frozen_dataclass(component):
    assert _result_problems(_stage_run(component)) == []


@dataclasses.dataclass(frozen=True)
class _Typed:
    rows: int


@dataclasses.dataclass
class _Mutable:
    rows: int


def test_result_check_refuses_dicts_and_bare_values():
    """The check above can fail: synthetic stages returning what a stage must not."""

    def typed() -> _Typed: ...
    def typed_or_nothing() -> _Typed | None: ...
    def as_dict() -> dict: ...
    def as_typed_dict() -> dict[str, Any]: ...
    def as_string() -> str: ...
    def nothing() -> None: ...
    def unannotated(): ...
    def typed_or_dict() -> _Typed | dict[str, int]: ...
    def mutable() -> _Mutable: ...

    assert _result_problems(typed) == _result_problems(typed_or_nothing) == []
    assert _result_problems(as_dict) == ["returns <class 'dict'>, not a dataclass"]
    assert _result_problems(as_typed_dict) == ["returns dict[str, typing.Any], not a dataclass"]
    assert _result_problems(as_string) == ["returns <class 'str'>, not a dataclass"]
    assert _result_problems(nothing) == ["returns None"]
    assert _result_problems(unannotated) == ["no return annotation"]
    assert _result_problems(typed_or_dict) == ["returns dict[str, int], not a dataclass"]
    assert _result_problems(mutable) == ["returns _Mutable, a dataclass that is not frozen"]
