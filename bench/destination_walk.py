"""The destination walk: functions the pusher's `destination` passes through, and module crossings.

Issue 32 counted the bounces by hand ("following `destination` from the pipeline to run()
bounces 33 times across pusher, versions, storage and model_card"); this counts them with ast
over containers/pusher.py, containers/push/*.py and containers/store/storage.py, so a change
to the pusher's modules can be measured before and after. The rule, static and
over-approximate the same way on both sides:

- The walk starts at `pusher.run` with its parameter `destination`.
- Inside a function, a name is tainted when it is a tainted parameter, or is assigned (=, for,
  with ... as, :=) from an expression naming a tainted name. `self` is tainted in the methods
  of a class that stored a tainted value on `self`, or that were called on a tainted receiver.
  Nested functions and lambdas count as part of the function they are written in.
- A call is on the walk when an argument names a tainted name, or its receiver does. The
  callee is resolved statically: a function of the same module or imported by name, a
  module's function (`storage.join`, also through an attribute holding the module such as
  `self.storage.join`), a class (its `__init__`), or for `receiver.method(...)` the method of
  the receiver's classes as annotated (parameters, functions' return types, `self.x` set in
  `__init__` from an annotated parameter or a constructor); a typing.Protocol stands for the
  classes having all its methods. A receiver of no known class: the methods of that name in
  the caller's own module.
  The callee's parameters receiving tainted arguments are tainted in turn.
- Reported: the functions on the walk, the call edges between them, and the crossings: edges
  whose two ends are in different modules (a bounce). A call through an interface (a
  receiver whose class is one of several, `_Local | _Remote` before, a `Destination` after)
  is one crossing, whichever implementation runs: crossings are counted by caller, callee
  module and callee name.

`python -m bench.destination_walk [--rev REV]` measures the working tree, and REV (read with
`git show`) when given; writes bench/results/destination_walk.json.
"""

from __future__ import annotations

import argparse
import ast
import subprocess
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from bench import REPO, RESULTS, write_json

PATTERNS = ("containers/pusher.py", "containers/push/*.py", "containers/store/storage.py")
START = ("tfkfp.containers.pusher", "run", "destination")


@dataclass
class _Module:
    name: str
    functions: dict[str, ast.FunctionDef] = field(default_factory=dict)  # top level
    classes: dict[str, dict[str, ast.FunctionDef]] = field(default_factory=dict)
    aliases: dict[str, tuple[str, ...]] = field(default_factory=dict)  # local name -> target
    protocols: dict[str, set[str]] = field(default_factory=dict)  # name -> its methods
    class_nodes: dict[str, ast.ClassDef] = field(default_factory=dict)


def module_name(rel: str) -> str:
    """`containers/push/versions.py` -> `tfkfp.containers.push.versions`."""
    dotted = "tfkfp." + rel.removesuffix(".py").replace("/", ".")
    return dotted.removesuffix(".__init__")


def _is_protocol(node: ast.ClassDef) -> bool:
    return any(
        (isinstance(b, ast.Name) and b.id == "Protocol")
        or (isinstance(b, ast.Attribute) and b.attr == "Protocol")
        for b in node.bases
    )


def _parse(sources: dict[str, str]) -> dict[str, _Module]:
    modules = {
        module_name(rel): (_Module(module_name(rel)), ast.parse(src))
        for rel, src in sources.items()
    }
    for mod, tree in modules.values():
        for node in tree.body:
            if isinstance(node, ast.FunctionDef):
                mod.functions[node.name] = node
            elif isinstance(node, ast.ClassDef):
                methods = {n.name: n for n in node.body if isinstance(n, ast.FunctionDef)}
                if _is_protocol(node):
                    mod.protocols[node.name] = set(methods)
                else:
                    mod.classes[node.name] = methods
                    mod.class_nodes[node.name] = node
    for mod, tree in modules.values():
        for node in ast.walk(tree):  # lazy imports inside functions too
            if isinstance(node, ast.ImportFrom) and node.module:
                for alias in node.names:
                    local = alias.asname or alias.name
                    target = f"{node.module}.{alias.name}"
                    if target in modules:
                        mod.aliases[local] = ("module", target)
                    elif node.module in modules:
                        other = modules[node.module][0]
                        if alias.name in other.functions:
                            mod.aliases[local] = ("function", node.module, alias.name)
                        elif alias.name in other.classes:
                            mod.aliases[local] = ("class", node.module, alias.name)
                        elif alias.name in other.protocols:
                            mod.aliases[local] = ("protocol", node.module, alias.name)
            elif isinstance(node, ast.Import):
                for alias in node.names:
                    if alias.name in modules and alias.asname:
                        mod.aliases[alias.asname] = ("module", alias.name)
    return {name: mod for name, (mod, _) in modules.items()}


def _names(node: ast.AST | None) -> set[str]:
    return {n.id for n in ast.walk(node) if isinstance(n, ast.Name)} if node else set()


def _targets(node: ast.AST) -> set[str]:
    return {n.id for n in ast.walk(node) if isinstance(n, ast.Name)}


def _body_nodes(fn: ast.FunctionDef) -> list[ast.AST]:
    nodes = []
    for stmt in fn.body:
        nodes.extend(ast.walk(stmt))
    return nodes


def walk(sources: dict[str, str]) -> dict:
    """The destination walk over `sources` (repo-relative path -> text)."""
    modules = _parse(sources)
    # function key: (module, class or "", name)
    tainted: dict[tuple[str, str, str], set[str]] = {}
    tainted_classes: set[tuple[str, str]] = set()
    edges: set[tuple[tuple[str, str, str], tuple[str, str, str]]] = set()

    def node_of(key: tuple[str, str, str]) -> ast.FunctionDef:
        mod = modules[key[0]]
        return mod.classes[key[1]][key[2]] if key[1] else mod.functions[key[2]]

    def implementers(module: str, protocol: str) -> set[tuple[str, str]]:
        wanted = modules[module].protocols[protocol]
        return {
            (m.name, c)
            for m in modules.values()
            for c, methods in m.classes.items()
            if wanted <= set(methods)
        }

    def classes_named(name: str, mod: _Module) -> set[tuple[str, str]]:
        if name in mod.classes:
            return {(mod.name, name)}
        if name in mod.protocols:
            return implementers(mod.name, name)
        target = mod.aliases.get(name)
        if target and target[0] == "class":
            return {(target[1], target[2])}
        if target and target[0] == "protocol":
            return implementers(target[1], target[2])
        return set()

    def annotated(annotation: ast.AST | None, mod: _Module) -> set[tuple[str, str]]:
        if isinstance(annotation, ast.Constant) and isinstance(annotation.value, str):
            annotation = ast.parse(annotation.value, mode="eval").body
        found: set[tuple[str, str]] = set()
        for n in ast.walk(annotation) if annotation else ():
            if isinstance(n, ast.Name):
                found |= classes_named(n.id, mod)
        return found

    def module_of(expr: ast.AST, mod: _Module) -> str | None:
        """The scanned module an expression names: `storage`, or `self.storage`."""
        last = expr.id if isinstance(expr, ast.Name) else getattr(expr, "attr", None)
        target = mod.aliases.get(last or "")
        return target[1] if target and target[0] == "module" else None

    def built(call: ast.AST, mod: _Module) -> set[tuple[str, str]]:
        """The classes a call returns: a constructor's, or a function's annotated return."""
        if not isinstance(call, ast.Call):
            return set()
        func, owner = call.func, mod
        if isinstance(func, ast.Attribute) and (name := module_of(func.value, mod)):
            owner, func = modules[name], ast.Name(func.attr)
        if not isinstance(func, ast.Name):
            return set()
        if func.id in owner.classes:
            return {(owner.name, func.id)}
        target = owner.aliases.get(func.id)
        if target and target[0] == "class":
            return {(target[1], target[2])}
        if func.id in owner.functions:
            return annotated(owner.functions[func.id].returns, owner)
        if target and target[0] == "function":
            other = modules[target[1]]
            return annotated(other.functions[target[2]].returns, other)
        return set()

    def env_of(key: tuple[str, str, str]) -> dict[str, set[tuple[str, str]]]:
        """Local names' classes: annotated parameters, then names assigned a built object."""
        mod, fn = modules[key[0]], node_of(key)
        env = {a.arg: annotated(a.annotation, mod) for a in fn.args.args if a.annotation}
        for node in _body_nodes(fn):
            if isinstance(node, ast.Assign) and len(node.targets) == 1:
                target = node.targets[0]
                if isinstance(target, ast.Name) and (classes := built(node.value, mod)):
                    env[target.id] = classes
        return {k: v for k, v in env.items() if v}

    attributes: dict[tuple[str, str], dict[str, set[tuple[str, str]]]] = {}
    for mod in modules.values():
        for cls, methods in mod.classes.items():
            found = attributes.setdefault((mod.name, cls), {})
            if "__init__" not in methods:
                continue
            env = env_of((mod.name, cls, "__init__"))
            for node in _body_nodes(methods["__init__"]):
                if not (isinstance(node, ast.Assign) and len(node.targets) == 1):
                    continue
                target = node.targets[0]
                if isinstance(target, ast.Attribute) and _names(target.value) == {"self"}:
                    value = node.value
                    classes = env.get(value.id, set()) if isinstance(value, ast.Name) else set()
                    found[target.attr] = classes or built(value, mod)

    def classes_of(expr: ast.AST, env: dict, mod: _Module, cls: str) -> set[tuple[str, str]]:
        if isinstance(expr, ast.Name):
            return env.get(expr.id, set())
        if isinstance(expr, ast.Attribute) and _names(expr.value) == {"self"} and cls:
            return attributes.get((mod.name, cls), {}).get(expr.attr, set())
        return built(expr, mod)

    def resolve(
        call: ast.Call, mod: _Module, key: tuple[str, str, str], receiver_tainted: bool
    ) -> list:
        func, cls = call.func, key[1]
        if isinstance(func, ast.Name):
            if func.id in mod.functions:
                return [(mod.name, "", func.id)]
            if func.id in mod.classes and "__init__" in mod.classes[func.id]:
                return [(mod.name, func.id, "__init__")]
            target = mod.aliases.get(func.id)
            if target and target[0] == "function":
                return [(target[1], "", target[2])]
            if target and target[0] == "class":
                if "__init__" in modules[target[1]].classes[target[2]]:
                    return [(target[1], target[2], "__init__")]
            return []
        if not isinstance(func, ast.Attribute):
            return []
        owner = module_of(func.value, mod)
        if owner:
            if func.attr in modules[owner].functions:
                return [(owner, "", func.attr)]
            if func.attr in modules[owner].classes:
                if "__init__" in modules[owner].classes[func.attr]:
                    return [(owner, func.attr, "__init__")]
            return []
        if isinstance(func.value, ast.Name) and func.value.id == "self" and cls:
            methods = modules[mod.name].classes.get(cls, {})
            return [(mod.name, cls, func.attr)] if func.attr in methods else []
        classes = classes_of(func.value, env_of(key), mod, cls)
        if classes:
            return [
                (m, c, func.attr) for m, c in sorted(classes) if func.attr in modules[m].classes[c]
            ]
        if not receiver_tainted:
            return []
        return [
            (mod.name, c, func.attr) for c, methods in mod.classes.items() if func.attr in methods
        ]

    def analyse(key: tuple[str, str, str]) -> list[tuple[tuple[str, str, str], set[str], bool]]:
        mod, fn = modules[key[0]], node_of(key)
        names = set(tainted[key])
        if key[1] and (key[0], key[1]) in tainted_classes:
            names.add("self")
        nodes = _body_nodes(fn)
        changed = True
        while changed:
            changed = False
            for node in nodes:
                pairs: list[tuple[ast.AST, ast.AST | None]] = []
                if isinstance(node, ast.Assign):
                    pairs = [(t, node.value) for t in node.targets]
                elif isinstance(node, ast.AnnAssign | ast.AugAssign):
                    pairs = [(node.target, node.value)]
                elif isinstance(node, ast.For | ast.comprehension):
                    pairs = [(node.target, node.iter)]
                elif isinstance(node, ast.withitem) and node.optional_vars is not None:
                    pairs = [(node.optional_vars, node.context_expr)]
                elif isinstance(node, ast.NamedExpr):
                    pairs = [(node.target, node.value)]
                for target, value in pairs:
                    if not (_names(value) & names):
                        continue
                    if (
                        isinstance(target, ast.Attribute)
                        and isinstance(target.value, ast.Name)
                        and target.value.id == "self"
                        and key[1]
                    ):
                        tainted_classes.add((key[0], key[1]))
                    new = _targets(target) - names - {"self"}
                    if new:
                        names |= new
                        changed = True
        calls = []
        for node in nodes:
            if not isinstance(node, ast.Call):
                continue
            receiver = isinstance(node.func, ast.Attribute) and bool(
                _names(node.func.value) & names
            )
            positional = [i for i, a in enumerate(node.args) if _names(a) & names]
            keywords = {k.arg for k in node.keywords if k.arg and _names(k.value) & names}
            if not (receiver or positional or keywords):
                continue
            for callee in resolve(node, mod, key, receiver):
                params = [a.arg for a in node_of(callee).args.args]
                if callee[1] and params and params[0] in ("self", "cls"):
                    params = params[1:]
                got = {params[i] for i in positional if i < len(params)}
                got |= keywords & set(params)
                calls.append((callee, got, receiver and bool(callee[1])))
        return calls

    start = (START[0], "", START[1])
    tainted[start] = {START[2]}
    todo = [start]
    while todo:
        key = todo.pop()
        for callee, params, via_self in analyse(key):
            edges.add((key, callee))
            grew = callee not in tainted or not params <= tainted[callee]
            if via_self and (callee[0], callee[1]) not in tainted_classes:
                tainted_classes.add((callee[0], callee[1]))
                grew = True
            if grew:
                tainted.setdefault(callee, set()).update(params)
                todo.append(callee)
            # a class newly tainted re-analyses its methods already on the walk
            for other in list(tainted):
                if other[1] and (other[0], other[1]) in tainted_classes and other not in todo:
                    if other != callee and other[0:2] == callee[0:2] and grew:
                        todo.append(other)

    def label(key: tuple[str, str, str]) -> str:
        short = key[0].removeprefix("tfkfp.containers.")
        return f"{short}:{key[1] + '.' if key[1] else ''}{key[2]}"

    crossings = sorted(
        {
            f"{label(a)} -> {b[0].removeprefix('tfkfp.containers.')}:{'*.' if b[1] else ''}{b[2]}"
            for a, b in edges
            if a[0] != b[0]
        }
    )
    return {
        "functions": len(tainted),
        "call_edges": len(edges),
        "crossings": len(crossings),
        "crossings_by_modules": dict(
            sorted(Counter(_pair(c) for c in crossings).items(), key=lambda kv: kv[0])
        ),
        "modules": sorted({k[0].removeprefix("tfkfp.containers.") for k in tainted}),
        "walk": sorted(label(k) for k in tainted),
        "crossing_edges": crossings,
    }


def _pair(crossing: str) -> str:
    """`pusher:run -> push.destination:*.uri` -> `pusher -> push.destination`."""
    caller, callee = crossing.split(" -> ")
    return f"{caller.split(':')[0]} -> {callee.split(':')[0]}"


def sources_at(rev: str | None) -> dict[str, str]:
    """The scanned files: of the working tree, or of a commit (`git show REV:path`)."""
    if rev is None:
        return {
            str(p.relative_to(REPO)): p.read_text()
            for pattern in PATTERNS
            for p in sorted(REPO.glob(pattern))
        }
    listed = subprocess.run(
        ["git", "-C", str(REPO), "ls-tree", "-r", "--name-only", rev, "containers/"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.split()
    wanted = [p for p in listed if any(Path(p).match(pattern) for pattern in PATTERNS)]
    return {
        p: subprocess.run(
            ["git", "-C", str(REPO), "show", f"{rev}:{p}"],
            check=True,
            capture_output=True,
            text=True,
        ).stdout
        for p in wanted
    }


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rev", help="also measure this commit (the `before`)")
    parser.add_argument("--no-save", action="store_true", help="do not write bench/results")
    args = parser.parse_args(argv)
    result = {"rule": "bench/destination_walk.py docstring"}
    if args.rev:
        rev = subprocess.run(
            ["git", "-C", str(REPO), "rev-parse", "--short", args.rev],
            check=True,
            capture_output=True,
            text=True,
        ).stdout.strip()
        result["before"] = {"rev": rev, **walk(sources_at(args.rev))}
    result["after"] = walk(sources_at(None))
    for side in ("before", "after"):
        if side in result:
            r = result[side]
            print(r["crossings_by_modules"])
            print(
                f"{side}: {r['functions']} functions, {r['call_edges']} call edges, "
                f"{r['crossings']} module crossings over {', '.join(r['modules'])}"
            )
    if not args.no_save:
        write_json(RESULTS / "destination_walk.json", result)
    return result


if __name__ == "__main__":
    main()
