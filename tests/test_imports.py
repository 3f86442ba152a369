"""The project's import rules, with setup.cfg's folder mapping understood.

No import cycles; no stage module imports another stage; no module imports another's private
(underscore) names; containers/ holds at its top only the stages, runtime, events and
__init__ (shared code lives in its packages by concern).

The folders are packages under other names (containers/ is tfkfp.containers), so a plain
folder-based graph would miss every edge; the graph is built from the mapping instead. Imports
inside functions count too: a lazy import is still a dependency, and a cycle through one only
waits for the call that closes it.
"""

import ast
import configparser
from dataclasses import dataclass
from pathlib import Path

from tests.helpers import REPO


def package_dirs(setup_cfg: Path) -> dict[str, Path]:
    """`tfkfp.containers` -> `<repo>/containers`, from setup.cfg's packages and package_dir."""
    cfg = configparser.ConfigParser()
    cfg.read(setup_cfg)
    mapping = {}
    for line in cfg["options"]["package_dir"].strip().splitlines():
        name, folder = (part.strip() for part in line.split("="))
        mapping[name] = folder
    dirs = {}
    for package in cfg["options"]["packages"].split():
        # a package not mapped itself lives under its closest mapped parent
        parent = max((p for p in mapping if package == p or package.startswith(p + ".")), key=len)
        rest = package[len(parent) :].lstrip(".").replace(".", "/")
        dirs[package] = setup_cfg.parent / mapping[parent] / rest
    return dirs


def module_files(dirs: dict[str, Path]) -> dict[str, Path]:
    """Every module of the packages: dotted name -> file."""
    modules = {}
    for package, folder in dirs.items():
        for path in folder.glob("*.py"):
            name = package if path.stem == "__init__" else f"{package}.{path.stem}"
            modules[name] = path
    return modules


@dataclass(frozen=True)
class Import:
    """One use of another project module: `module` (line `line`) takes `name` from `target`.

    `name` is empty when the whole module is imported; `how` is `from` (`from target import
    name`) or `attribute` (`target_alias.name` on an imported module).
    """

    module: str
    target: str
    name: str
    line: int
    how: str = "from"

    def __str__(self) -> str:
        if self.how == "attribute":
            return f"{self.module}:{self.line} uses {self.target}.{self.name}"
        what = f"from {self.target} import {self.name}" if self.name else f"import {self.target}"
        return f"{self.module}:{self.line} {what}"


def imports(modules: dict[str, Path]) -> list[Import]:
    """Every import of a project module by another (anywhere in the file, lazy ones too).

    `from pkg import mod` imports the module `pkg.mod` (name empty); `from mod import name`
    takes `name` from `mod`. Attribute uses `alias.name` of a module bound by an import are
    listed too (how="attribute"), so `mod._private` is seen as well as `from mod import _private`.
    """
    found = []
    for name, path in modules.items():
        package = name if path.stem == "__init__" else name.rpartition(".")[0]
        bound: dict[str, str] = {}  # local name -> the project module it stands for
        tree = ast.parse(path.read_text(), str(path))
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                for alias in node.names:
                    if alias.name in modules and alias.name != name:
                        found.append(Import(name, alias.name, "", node.lineno))
                        if alias.asname:
                            bound[alias.asname] = alias.name
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    anchor = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                    base = f"{anchor}.{base}".rstrip(".")
                for alias in node.names:
                    full = f"{base}.{alias.name}"
                    if full in modules and full != name:  # a module of a package
                        found.append(Import(name, full, "", node.lineno))
                        bound[alias.asname or alias.name] = full
                    elif base in modules and base != name:
                        found.append(Import(name, base, alias.name, node.lineno))
        for node in ast.walk(tree):
            if (
                isinstance(node, ast.Attribute)
                and isinstance(node.value, ast.Name)
                and node.value.id in bound
            ):
                found.append(
                    Import(name, bound[node.value.id], node.attr, node.lineno, "attribute")
                )
    return found


def import_graph(modules: dict[str, Path]) -> dict[str, set[str]]:
    """module -> the project's modules it imports (anywhere in the file)."""
    graph: dict[str, set[str]] = {name: set() for name in modules}
    for found in imports(modules):
        graph[found.module].add(found.target)
    return graph


def private_imports(found: list[Import]) -> list[str]:
    """The imports that take a private (underscore, not dunder) name from another module."""
    return sorted(
        {
            str(i)
            for i in found
            if i.name.startswith("_") and not (i.name.startswith("__") and i.name.endswith("__"))
        }
    )


def stage_to_stage(graph: dict[str, set[str]], stages: list[str]) -> list[str]:
    """`a -> b` for every stage module `a` that imports another stage module `b`."""
    return sorted(f"{a} -> {b}" for a in stages for b in graph.get(a, ()) if b in stages)


def misplaced(folder: Path, stages: list[str]) -> list[str]:
    """Modules at the top of containers/ other than the stages, runtime, events and __init__."""
    allowed = {*stages, "runtime", "events", "__init__"}
    return sorted(p.name for p in folder.glob("*.py") if p.stem not in allowed)


def unlisted_packages(setup_cfg: Path) -> list[str]:
    """Folders with an __init__.py under a mapped package that setup.cfg does not list.

    Their modules would be neither installed nor seen by these checks.
    """
    dirs = package_dirs(setup_cfg)
    listed = {d.resolve() for d in dirs.values()}
    return sorted(
        str(init.parent)
        for d in dirs.values()
        for init in d.glob("*/__init__.py")
        if init.parent.resolve() not in listed
    )


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The graph's cycles, one per strongly connected component of more than one module."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(graph.get(node, ())):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                top = stack.pop()
                on_stack.discard(top)
                component.append(top)
                if top == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def project_graph(setup_cfg: Path) -> dict[str, set[str]]:
    return import_graph(module_files(package_dirs(setup_cfg)))


def test_no_import_cycles():
    graph = project_graph(REPO / "setup.cfg")
    assert "tfkfp.containers.runtime" in graph and "tfkfp.cli" in str(sorted(graph))
    assert cycles(graph) == []


def test_runtime_imports_nothing_of_the_project():
    graph = project_graph(REPO / "setup.cfg")
    assert graph["tfkfp.containers.runtime"] == set()
    # the edges exist where they should: the graph sees through the folder mapping
    assert "tfkfp.containers.runtime" in graph["tfkfp.containers.store.storage"]


def test_the_check_finds_a_planted_cycle(tmp_path):
    (tmp_path / "setup.cfg").write_text(
        "[options]\npackages =\n    proj\n    proj.stages\n"
        "package_dir =\n    proj = proj\n    proj.stages = stages\n"
    )
    (tmp_path / "proj").mkdir()
    (tmp_path / "proj" / "__init__.py").write_text("")
    stages = tmp_path / "stages"
    stages.mkdir()
    (stages / "__init__.py").write_text("")
    (stages / "a.py").write_text("from proj.stages import b\n")
    (stages / "b.py").write_text("def f():\n    from proj.stages.c import g\n")
    (stages / "c.py").write_text("from . import a\n\ng = 1\n")
    (stages / "d.py").write_text("from proj.stages.a import x\n")
    graph = project_graph(tmp_path / "setup.cfg")
    assert cycles(graph) == [["proj.stages.a", "proj.stages.b", "proj.stages.c"]]
    (stages / "c.py").write_text("g = 1\n")
    assert cycles(project_graph(tmp_path / "setup.cfg")) == []


def stage_names() -> list[str]:
    """The stage modules' names (`infra_validate`), from components.STAGES, never retyped."""
    from tfkfp.components import STAGES

    return [stage.python_func.__name__ for stage in STAGES]


def test_no_stage_imports_another_stage():
    graph = project_graph(REPO / "setup.cfg")
    stages = [f"tfkfp.containers.{name}" for name in stage_names()]
    assert len(stages) == 12 and all(s in graph for s in stages)
    found = stage_to_stage(graph, stages)
    assert found == [], "a stage imports another stage (share code through a package): " + (
        "; ".join(found)
    )


def test_no_private_name_is_imported_from_another_module():
    found = private_imports(imports(module_files(package_dirs(REPO / "setup.cfg"))))
    assert found == [], "private names used from another module: " + "; ".join(found)


def test_containers_top_holds_only_stages_runtime_and_events():
    folder = package_dirs(REPO / "setup.cfg")["tfkfp.containers"]
    found = misplaced(folder, stage_names())
    assert found == [], f"modules at the top of {folder} that belong in a package: {found}"


def test_every_package_folder_is_listed_in_setup_cfg():
    assert unlisted_packages(REPO / "setup.cfg") == []


def _planted_project(tmp_path: Path) -> Path:
    """A small project laid out as this one: proj.stages mapped to the folder stages/."""
    (tmp_path / "setup.cfg").write_text(
        "[options]\npackages =\n    proj\n    proj.stages\n    proj.stages.shared\n"
        "package_dir =\n    proj = proj\n    proj.stages = stages\n"
    )
    (tmp_path / "proj").mkdir()
    (tmp_path / "proj" / "__init__.py").write_text("")
    stages = tmp_path / "stages"
    (stages / "shared").mkdir(parents=True)
    (stages / "__init__.py").write_text("")
    (stages / "shared" / "__init__.py").write_text("")
    (stages / "shared" / "io.py").write_text("def _hidden():\n    pass\n\ndef read():\n    pass\n")
    (stages / "runtime.py").write_text("")
    (stages / "a.py").write_text("from proj.stages.shared.io import read\n")
    (stages / "b.py").write_text("from proj.stages.shared import io\n\nio.read()\n")
    return tmp_path


def test_the_rule_checks_find_planted_violations(tmp_path):
    root = _planted_project(tmp_path)
    stages = tmp_path / "stages"
    setup = root / "setup.cfg"

    def graph():
        return project_graph(setup)

    def private():
        return private_imports(imports(module_files(package_dirs(setup))))

    names = ["proj.stages.a", "proj.stages.b"]
    # a clean project passes every check
    assert stage_to_stage(graph(), names) == []
    assert private() == []
    assert misplaced(stages, ["a", "b"]) == []
    assert unlisted_packages(setup) == []
    # a stage importing another stage, lazily inside a function
    (stages / "a.py").write_text("def f():\n    from proj.stages import b\n")
    assert stage_to_stage(graph(), names) == ["proj.stages.a -> proj.stages.b"]
    # a private name, imported (relatively) or used as an attribute of an imported module
    (stages / "a.py").write_text("from .shared.io import _hidden, read\n")
    assert private() == ["proj.stages.a:1 from proj.stages.shared.io import _hidden"]
    (stages / "a.py").write_text("import proj.stages.shared.io as io\n\nio._hidden()\n")
    assert private() == ["proj.stages.a:3 uses proj.stages.shared.io._hidden"]
    (stages / "a.py").write_text("from proj.stages.shared import io\n\nio.__name__, io.read\n")
    assert private() == []  # dunders and public names are fine
    # a shared module left at the top
    (stages / "helpers.py").write_text("")
    assert misplaced(stages, ["a", "b"]) == ["helpers.py"]
    # a package folder setup.cfg does not list (its modules would go unseen and uninstalled)
    (stages / "extra").mkdir()
    (stages / "extra" / "__init__.py").write_text("")
    assert unlisted_packages(setup) == [str(stages / "extra")]


def test_cli_help_imports_no_kfp_or_tensorflow():
    """`tfkfp --help` and argument errors load only the front end, not a command group."""
    import subprocess
    import sys

    code = (
        "import sys\n"
        "from tfkfp.cli import main\n"
        "try:\n    main(['--help'])\nexcept SystemExit:\n    pass\n"
        "heavy = ('kfp', 'tensorflow', 'apache_beam', 'tensorflow_model_analysis', 'docker')\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in heavy or m.startswith('tfkfp.cli.')))\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert "usage: tfkfp" in proc.stdout
    assert proc.stdout.strip().splitlines()[-1] == "[]"


def test_stage_code_never_imports_the_components():
    """containers/ runs inside KFP tasks, where kfp.dsl is in runtime mode (no dsl.component):
    importing tfkfp.components there, even lazily for a constant, fails the task."""
    found = []
    for path in sorted((REPO / "containers").glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            names = []
            if isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            elif isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            found += [f"{path.name}: {n}" for n in names if n.startswith("tfkfp.components")]
    assert found == []


def test_every_cli_command_module_declares_its_arguments_and_handler():
    """Each command's module declares its own arguments and handler; no module goes unmapped."""
    import importlib

    from tfkfp.cli import COMMANDS

    mapped = {module for module, _ in COMMANDS.values()}
    for module_name in mapped:
        module = importlib.import_module(f"tfkfp.cli.{module_name}")
        assert callable(module.add_arguments) and callable(module.handle), module_name
    folder = REPO / "tfkfp" / "cli"
    helpers = {"common"}  # what the command modules share
    found = {p.stem for p in folder.glob("*.py") if not p.stem.startswith("_")} - helpers
    assert found == mapped
