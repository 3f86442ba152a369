"""No import cycles among the project's modules, with setup.cfg's folder mapping understood.

The folders are packages under other names (containers/ is tfkfp.containers), so a plain
folder-based graph would miss every edge; the graph is built from the mapping instead. Imports
inside functions count too: a lazy import is still a dependency, and a cycle through one only
waits for the call that closes it.
"""

import ast
import configparser
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


def import_graph(modules: dict[str, Path]) -> dict[str, set[str]]:
    """module -> the project's modules it imports (anywhere in the file)."""
    graph = {}
    for name, path in modules.items():
        package = name if path.stem == "__init__" else name.rpartition(".")[0]
        found = set()
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    anchor = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                    base = f"{anchor}.{base}".rstrip(".")
                # `from pkg import mod` names a module; `from mod import name` names the module
                targets = [f"{base}.{alias.name}" for alias in node.names] + [base]
            else:
                continue
            for target in targets:
                if target in modules and target != name:
                    found.add(target)
        graph[name] = found
    return graph


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
