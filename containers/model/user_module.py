"""Loads the user's module file: a local path, a gs:// or s3:// URI, or a dotted module name."""

from __future__ import annotations

import contextlib
import hashlib
import importlib
import importlib.abc
import importlib.util
import os
import socket
import sys
import tempfile
import traceback
from collections.abc import Iterator
from types import ModuleType

from tfkfp.containers.runtime import InputError, log


def _download(loc) -> str:
    """Copies a gs:// or s3:// module file and its helpers into a temp folder; returns its path.

    The helpers are what a local module file could import from its import root: the `.py`
    files and the packages (sub-folders with `__init__.py`) there. The import root is the
    module's folder, or, for a module inside a package (`models/keras_model/model.py` with
    `__init__.py` files above it, as `tfx template copy` lays a project out), the folder above
    the top package, whose whole package is fetched. The import then goes as for a local file.
    """
    from tfkfp.containers.store import storage

    if not loc.key or loc.key.endswith("/"):
        raise InputError(
            f"module_file: expected {loc.scheme}://bucket/path/to/module.py, got {loc.uri!r}"
        )
    if storage.stat(loc.uri, "module_file") is None:
        storage.read_bytes(loc.uri, "module_file")  # names the missing bucket or object
        raise InputError(f"module_file: no such file {loc.uri}")
    parts = loc.key.split("/")[:-1]  # the module's folders below the bucket
    root = len(parts)
    while root > 0:
        init = storage.join(f"{loc.scheme}://{loc.bucket}", *parts[:root], "__init__.py")
        if storage.stat(init, "module_file") is None:
            break
        root -= 1
    folder = storage.join(f"{loc.scheme}://{loc.bucket}", *parts[:root])
    folders, files = storage.list_dir(folder, "module_file")
    local_dir = tempfile.mkdtemp(prefix="tfkfp-module-")
    for f in files:
        if f.uri == loc.uri or f.uri.endswith(".py"):
            storage.download(f.uri, local_dir, "module_file")
    for name in folders:
        package = storage.join(folder, name)
        if storage.stat(storage.join(package, "__init__.py"), "module_file") is not None:
            storage.download(package, os.path.join(local_dir, name), "module_file")
    log.info(
        "downloaded module file %s with its helpers from %s: %s",
        loc.uri,
        folder,
        sorted(os.listdir(local_dir)),
    )
    return os.path.join(local_dir, *parts[root:], os.path.basename(loc.key))


# Folders of module files imported in this process (on sys.path, newest first).
_HELPER_FOLDERS: list[str] = []
# Folders of module files imported by dotted name (not put on sys.path).
_USER_FOLDERS: set[str] = set()


def _helper_names(folder: str) -> set[str]:
    """Top-level names a module file can import from its folder: `x.py` files and packages."""
    names = set()
    for entry in os.listdir(folder):
        full = os.path.join(folder, entry)
        if entry.endswith(".py"):
            names.add(entry[: -len(".py")])
        elif os.path.isfile(os.path.join(full, "__init__.py")):
            names.add(entry)
    return names


def _inside(path: str | None, folder: str) -> bool:
    return bool(path) and os.path.abspath(path).startswith(folder + os.sep)


def import_folder(folder: str) -> None:
    """Makes the helper modules next to a module file importable (`import my_utils`).

    The folder goes first on sys.path and stays there for the rest of the process (a stage's
    process): run_fn and preprocessing_fn may import helpers lazily. A helper of the same name
    imported earlier from another module file's folder (several module files in one process) is
    dropped from sys.modules so this folder's one is imported; a helper shadowed by a module
    imported from elsewhere is logged, since `import` would give that one.
    """
    folder = os.path.abspath(folder)
    names = _helper_names(folder)
    for name, module in list(sys.modules.items()):
        top = name.partition(".")[0]
        origin = getattr(module, "__file__", None)
        if top not in names or _inside(origin, folder):
            continue
        if any(_inside(origin, other) for other in _HELPER_FOLDERS):
            del sys.modules[name]
        elif name == top:
            log.warning(
                "module_file: %s.py next to it is shadowed by the module %s already imported "
                "from %s; rename the helper to import it",
                top,
                top,
                origin or "(built in)",
            )
    if folder in sys.path:
        sys.path.remove(folder)
    sys.path.insert(0, folder)
    if folder in _HELPER_FOLDERS:
        _HELPER_FOLDERS.remove(folder)
    _HELPER_FOLDERS.insert(0, folder)


def package_root(folder: str) -> tuple[str, list[str]]:
    """The import root of a module file's folder and the packages from it down to the folder.

    A folder without `__init__.py` is its own root (`[]`). For `proj/models/keras_model` with
    `__init__.py` in both, the root is `proj` and the packages `["models", "keras_model"]`:
    TFX runs such a module from the project root, where `from models import features` works.
    """
    root = os.path.abspath(folder)
    packages: list[str] = []
    while os.path.isfile(os.path.join(root, "__init__.py")):
        parent = os.path.dirname(root)
        if parent == root:
            break
        packages.insert(0, os.path.basename(root))
        root = parent
    return root, packages


def _import_path(path: str, label: str) -> ModuleType:
    """Imports the module file at `path` (its import root importable); `label` names it in errors.

    A module inside a package is imported under its dotted name below the package root
    (`models.keras_model.model`), so its absolute and relative imports of the package work;
    any other under a name unique to its path, so two module files never shadow each other.
    """
    root, packages = package_root(os.path.dirname(os.path.abspath(path)))
    if packages and root in {os.path.abspath(p) for p in sys.path if p}:
        # Already importable from there (an installed package: site-packages): leave the
        # import path as it is; only the module's own folder is the user's code.
        _USER_FOLDERS.add(os.path.dirname(os.path.abspath(path)))
    else:
        import_folder(root)
    stem = os.path.splitext(os.path.basename(path))[0]
    if packages and stem.isidentifier():
        name = ".".join([*packages, stem])
    else:
        digest = hashlib.sha1(os.path.abspath(path).encode()).hexdigest()[:10]
        name = f"tfkfp_user_module_{digest}"
    loaded = sys.modules.get(name)
    if packages and _inside(getattr(loaded, "__file__", None), root):
        same = os.path.abspath(loaded.__file__) == os.path.abspath(path)
        if same:
            return loaded  # imported before, by name or as this module file
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise InputError(f"module_file: {label} is not a Python file")
    module = importlib.util.module_from_spec(spec)
    try:
        if packages:
            # The parent packages first, as `import models.keras_model.model` would.
            importlib.import_module(".".join(packages))
        sys.modules[name] = module
        spec.loader.exec_module(module)
    except Exception as err:
        sys.modules.pop(name, None)
        log.error("importing %s failed:\n%s", label, traceback.format_exc())
        network = _network_error(err)
        if network is not None:
            raise InputError(
                f"module_file: {label} tried to reach the network while it was imported and "
                f"failed ({_one_line(network)}{_at(err)}); {OFFLINE_HINT}"
            ) from err
        raise InputError(
            f"module_file: {label} does not import: {type(err).__name__}: {err}"
        ) from err
    return module


def load(module_ref: str) -> ModuleType:
    """Imports a module from a path, gs:// or s3:// URI or dotted name; errors name it."""
    if not module_ref:
        raise InputError(
            "module_file: expected a path, gs:// or s3:// URI or dotted module name, got ''"
        )
    if module_ref.endswith(".py") or "/" in module_ref or ":" in module_ref:
        from tfkfp.containers.store import storage

        loc = storage.parse(module_ref, "module_file")  # a bad scheme fails here
        if loc.scheme != "file":
            return _import_path(_download(loc), module_ref)
    if module_ref.endswith(".py") or os.sep in module_ref:
        if not os.path.isfile(module_ref):
            raise InputError(f"module_file: no such file {module_ref!r}")
        return _import_path(module_ref, module_ref)
    try:
        module = importlib.import_module(module_ref)
        _USER_FOLDERS.add(os.path.dirname(os.path.abspath(module.__file__ or "")))
        return module
    except ModuleNotFoundError as err:
        # Only "the module itself is missing" means the name was wrong; a module that exists but
        # imports a missing package falls through to "does not import" with its traceback.
        if err.name and (module_ref == err.name or module_ref.startswith(f"{err.name}.")):
            raise InputError(
                f"module_file: {module_ref!r} is neither a file (no such path) nor an importable "
                f"Python module ({err})"
            ) from err
        log.error("importing %s failed:\n%s", module_ref, traceback.format_exc())
        raise InputError(
            f"module_file: {module_ref} does not import: {type(err).__name__}: {err}"
        ) from err
    except Exception as err:
        log.error("importing %s failed:\n%s", module_ref, traceback.format_exc())
        raise InputError(
            f"module_file: {module_ref} does not import: {type(err).__name__}: {err}"
        ) from err


# What a module that downloads (TF Hub, Keras' get_file, a tokenizer's vocabulary) is told when
# it cannot: KFP clusters often have no egress.
OFFLINE_HINT = (
    "a cluster without internet access cannot download at run time: put the files in a bucket "
    "the pipeline can read (gs://, s3://) and load them from there, or into the image "
    "(docs/module-files.md#modules-that-download)"
)

# Exception types that mean "could not reach a host" (and libraries' ones, by name: requests,
# urllib3 and httpx are not imported here).
_NETWORK_TYPES: tuple[type[BaseException], ...] = (ConnectionError, TimeoutError, socket.gaierror)
_NETWORK_NAMES = {
    "URLError",
    "NewConnectionError",
    "MaxRetryError",
    "ConnectTimeout",
    "ConnectError",
}


def _chain(err: BaseException) -> list[BaseException]:
    """`err` and the exceptions it was raised from or while handling, outermost first."""
    seen: list[BaseException] = []
    todo = [err]
    while todo:
        current = todo.pop(0)
        if current is None or any(current is s for s in seen):
            continue
        seen.append(current)
        todo += [current.__cause__, current.__context__]
    return seen


def _network_error(err: BaseException) -> BaseException | None:
    """The exception in `err`'s chain that says a host could not be reached, if any."""
    import urllib.error

    for current in _chain(err):
        if isinstance(current, (*_NETWORK_TYPES, urllib.error.URLError)):
            return current
        if any(t.__name__ in _NETWORK_NAMES for t in type(current).__mro__):
            return current
    return None


def _one_line(err: BaseException, limit: int = 300) -> str:
    """`Type: first line of the message`, cut to `limit` characters."""
    lines = [line.strip() for line in str(err).splitlines() if line.strip()]
    text = f"{type(err).__name__}: {lines[0]}" if lines else type(err).__name__
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _own_folders() -> tuple[str, ...]:
    """tfkfp's own code (never the user's, even when a module file sits in a checkout)."""
    import tfkfp
    import tfkfp.containers

    return tuple(os.path.dirname(os.path.abspath(m.__file__)) for m in (tfkfp, tfkfp.containers))


def _user_frames(err: BaseException) -> list[traceback.FrameSummary]:
    """The frames of `err`'s traceback in module files this process imported, outermost first.

    A frame counts when it is under a module file's import root, unless that root is a whole
    library folder (a module file inside an installed package) or the frame is tfkfp's own
    code around a module file that sits in a tfkfp checkout.
    """
    roots = [
        r
        for r in (*_HELPER_FOLDERS, *_USER_FOLDERS)
        if os.path.basename(r) not in ("site-packages", "dist-packages")
    ]
    own = _own_folders()
    frames = []
    for frame in traceback.extract_tb(err.__traceback__):
        path = os.path.abspath(frame.filename)
        for root in roots:
            if _inside(path, root) and not any(
                _inside(path, o) and not (root == o or _inside(root, o)) for o in own
            ):
                frames.append(frame)
                break
    return frames


def _shown(path: str) -> str:
    """A user file's path relative to its import root (a downloaded module's temp folder)."""
    for root in [*_HELPER_FOLDERS, *_USER_FOLDERS]:
        if _inside(path, root):
            return os.path.relpath(path, root)
    return path


def _at(err: BaseException) -> str:
    """`, at file.py:12 in fn` for the deepest frame of the user's code in `err`'s traceback."""
    frames = _user_frames(err)
    if not frames:
        return ""
    last = frames[-1]
    return f", at {_shown(last.filename)}:{last.lineno} in {last.name}"


def failure_line(err: BaseException) -> str | None:
    """The one line for an exception raised in the user's code, or None if it was not.

    Names the module's function the stage called (preprocessing_fn, run_fn, tuner_fn, or a
    KerasTuner build function: the outermost frame in the module's files), the exception and
    the file:line it was raised at (the innermost such frame). A failure to reach a host gets
    its own line: a module that downloads at run time fails so on a cluster without egress.
    """
    for current in _chain(err):
        frames = _user_frames(current)
        if not frames:
            continue
        called = frames[0].name
        network = _network_error(err)
        if network is not None:
            return (
                f"module_file: {called}() tried to reach the network and failed "
                f"({_one_line(network)}{_at(current)}); {OFFLINE_HINT}"
            )
        return (
            f"module_file: {called}() raised {_one_line(err)}{_at(current)} "
            "(its traceback is logged above)"
        )
    return None


def file_sha256(module: ModuleType) -> str:
    """`sha256:<hex>` of an imported module file's bytes (the model card's module file hash)."""
    with open(module.__file__, "rb") as fh:
        return "sha256:" + hashlib.sha256(fh.read()).hexdigest()


def load_function(module_ref: str, name: str):
    """Returns `name` from the user module, failing clearly when it is missing."""
    module = load(module_ref)
    fn = getattr(module, name, None)
    if not callable(fn):
        raise InputError(f"module_file: {module_ref} defines no function {name}()")
    return fn


class _KerasAlias(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Imports `keras` and `keras.*` as the same modules of `tf_keras` (tf.keras's flavour)."""

    def find_spec(self, name, path=None, target=None):
        if name != "keras" and not name.startswith("keras."):
            return None
        try:
            module = importlib.import_module("tf_keras" + name[len("keras") :])
        except ImportError:
            return None  # no such tf_keras module: the import fails as it would
        return importlib.util.spec_from_loader(name, self, origin=module.__spec__.origin)

    def create_module(self, spec):
        module = sys.modules["tf_keras" + spec.name[len("keras") :]]
        self._saved = (module, module.__spec__, getattr(module, "__loader__", None))
        return module

    def exec_module(self, module):
        # The import machinery stamped the alias's spec on the real module: put its own back.
        saved, spec, loader = self._saved
        saved.__spec__, saved.__loader__ = spec, loader


@contextlib.contextmanager
def keras_names() -> Iterator[None]:
    """While a module file is imported and run, `keras.*` is the Keras that `tf.keras` is.

    TFX-era modules mix `tf.keras` with `import keras` / `from keras.callbacks import ...`
    (TFX's airflow_workshop taxi module). With the tf_keras flavour, `tf.keras` is Keras 2
    (tf_keras) but `keras` is Keras 3: a Keras 3 callback in a Keras 2 `fit` fails
    (`no attribute '_implements_train_batch_hooks'`). So here `keras` names tf_keras too.
    With the keras3 flavour both already are Keras 3. The process's own `keras` modules are
    put back afterwards.
    """
    if os.environ.get("TF_USE_LEGACY_KERAS") != "1" or importlib.util.find_spec("tf_keras") is None:
        yield
        return
    names = [n for n in sys.modules if n == "keras" or n.startswith("keras.")]
    saved = {n: sys.modules.pop(n) for n in names}
    alias = _KerasAlias()
    sys.meta_path.insert(0, alias)
    try:
        yield
    finally:
        sys.meta_path.remove(alias)
        for n in [n for n in sys.modules if n == "keras" or n.startswith("keras.")]:
            del sys.modules[n]
        sys.modules.update(saved)
