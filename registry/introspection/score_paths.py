"""The paths an artifact's score.py opens or loads, found on its syntax tree (never run).

A score.py is deployed next to the artifact's files and must only read those: a path that is
absolute ("/etc/passwd", "C:\\models", "~/.ssh"), or that goes up with a ".." segment, reaches
outside the artifact. `outside_paths(tree)` lists such paths where they are given to something
that opens, loads, lists or imports from a path, or where a path is built from them:

- openers: open(), io.open, os.open, codecs/gzip/bz2/lzma/tarfile/shelve opens, zipfile.ZipFile,
  numpy.load/loadtxt/fromfile/memmap, joblib/torch/onnx/keras/tensorflow loaders, onnxruntime
  sessions, safetensors, h5py.File, os.listdir/scandir/walk/chdir/stat, os.path.exists...,
  glob, shutil, sys.path.insert/append, runpy.run_path, importlib's spec_from_file_location,
  and any call of a function or method named open, load, load_*, read_*, from_pretrained,
  from_file, imread (pandas.read_csv, booster.load_model, ...): their first argument and
  path-like keywords (file, path, filepath_or_buffer, model_file...);
- builders: os.path.join, pathlib.Path(...) and friends, Path / "part", .joinpath(), and the
  receiver of a Path method that opens or lists (.open(), .read_text(), .iterdir()...).

Values are followed statically: string constants, f-strings (their constant parts), +, %
and str.format templates, names assigned in the same function or at module level, parameter
defaults, os.path.join/dirname/abspath/realpath/normpath/expanduser, Path(...).parent,
.parents[k], .resolve(). __file__ is score.py inside the artifact's folder, so
os.path.dirname(__file__) is that folder and its parent is outside. What cannot be known
(a function argument, an environment variable) is never reported: only what the file itself
spells out. A relative path without ".." (relative to the working directory, the artifact's
folder when deployed) is inside. This is a check of what the file says, not a sandbox: code
that computes a path at run time (chr(47) + "etc") is not followed. TooComplex is raised when
following takes more than MAX_STEPS expressions; the caller fails the check.
"""

from __future__ import annotations

import ast
import itertools
import re

ROOT = "\x01"  # the artifact's folder, where score.py is
UNKNOWN = "\x00"  # a part of a path that is not known statically
MAX_CANDIDATES = 64  # values followed per expression
MAX_DEPTH = 24  # nested expressions followed
MAX_STEPS = 200_000  # expressions evaluated in one score.py
MAX_REPORTED = 50

OPENERS = {
    "open", "io.open", "os.open", "codecs.open", "gzip.open", "bz2.open", "lzma.open", "tarfile.open",
    "zipfile.ZipFile", "shelve.open", "dbm.open", "h5py.File", "numpy.load", "numpy.loadtxt", "numpy.genfromtxt",
    "numpy.fromfile", "numpy.memmap", "joblib.load", "torch.load", "torch.jit.load", "onnx.load", "onnx.load_model",
    "onnxruntime.InferenceSession", "tensorflow.saved_model.load", "tensorflow.keras.models.load_model",
    "keras.models.load_model", "keras.saving.load_model", "safetensors.safe_open", "os.listdir", "os.scandir",
    "os.walk", "os.chdir", "os.stat", "os.lstat", "os.remove", "os.unlink", "os.rename", "os.makedirs", "os.mkdir",
    "os.path.exists", "os.path.isfile", "os.path.isdir", "os.path.getsize", "glob.glob", "glob.iglob",
    "shutil.copy", "shutil.copy2", "shutil.copyfile", "shutil.copytree", "shutil.rmtree", "shutil.move",
    "runpy.run_path", "PIL.Image.open", "cv2.imread", "xgboost.Booster", "lightgbm.Booster",
}
OPENER_NAMES = {"open", "load", "from_pretrained", "from_file", "imread", "File", "ZipFile", "Booster"}
OPENER_PREFIXES = ("load_", "read_")
SECOND_ARGUMENT = {"sys.path.insert", "importlib.util.spec_from_file_location"}
ALL_ARGUMENTS = {"sys.path.append", "sys.path.extend", "shutil.copy", "shutil.copy2", "shutil.copyfile",
                 "shutil.copytree", "shutil.move", "os.rename"}
PATH_KEYWORDS = {
    "file", "filename", "fname", "f", "fp", "path", "filepath", "file_path", "filepath_or_buffer", "path_or_buf",
    "path_or_buffer", "io", "model_file", "model_path", "model_uri", "uri", "export_dir", "src", "dst",
    "pretrained_model_name_or_path", "path_or_bytes", "location", "name",
}
JOINS = {"os.path.join", "posixpath.join", "ntpath.join"}
PATH_CLASSES = {"pathlib.Path", "pathlib.PurePath", "pathlib.PosixPath", "pathlib.WindowsPath",
                "pathlib.PurePosixPath", "pathlib.PureWindowsPath"}
SAME_PATH = {"os.path.abspath", "os.path.realpath", "os.path.normpath", "os.path.normcase", "os.path.expanduser",
             "os.path.expandvars", "os.fspath", "str", "posixpath.normpath"}
SAME_PATH_METHODS = {"resolve", "absolute", "expanduser", "as_posix"}
PATH_METHODS = {"open", "read_text", "read_bytes", "write_text", "write_bytes", "iterdir", "glob", "rglob", "exists",
                "is_file", "is_dir", "stat", "touch", "unlink", "mkdir", "rmdir"}
_ABSOLUTE = re.compile(r"^(?:[/\\]|[A-Za-z]:)")
_PERCENT_FIELD = re.compile(r"%(?:\([^)]*\))?[-#0 +]*(?:\*|\d+)?(?:\.(?:\*|\d+))?[diouxXeEfFgGcrsa]")
_FORMAT_FIELD = re.compile(r"\{[^{}]*\}")


def outside_paths(tree: ast.Module) -> list[dict]:
    """[{line, code, path, problem}] for each path outside the artifact that score.py opens or builds."""
    analysis = _Analysis(tree)
    found, seen = [], set()
    for node, scope in analysis.uses:
        for expression in analysis.path_expressions(node):
            for value in analysis.values(expression, scope):
                problem = _problem(value)
                key = (node.lineno, value)
                if problem and key not in seen:
                    seen.add(key)
                    found.append({"line": node.lineno, "code": _code(node), "path": _shown(value),
                                  "problem": problem})
    return sorted(found, key=lambda item: item["line"])[:MAX_REPORTED]


def _problem(value: str) -> str | None:
    if value.startswith(ROOT):
        return "leaves the artifact's folder" if ".." in re.split(r"[\\/]", value) else None
    if not value.startswith(UNKNOWN):
        if value.startswith("~"):
            return "a path in the home directory"
        if _ABSOLUTE.match(value):
            return "an absolute path"
    if ".." in re.split(r"[\\/]", value):
        return "goes up with '..'"
    return None


def _shown(value: str) -> str:
    return value.replace(ROOT, "<artifact>").replace(UNKNOWN, "…")[:300]


def _code(node: ast.AST) -> str:
    text = ast.unparse(node)
    return text if len(text) <= 120 else text[:117] + "..."


def _join(first: str, second: str) -> str:
    if second.startswith(ROOT) or _ABSOLUTE.match(second) or not first:
        return second
    return first + ("" if first.endswith(("/", "\\")) else "/") + second


def _dirname(value: str) -> str:
    if value == UNKNOWN:
        return UNKNOWN
    if value == ROOT or value.endswith(("/..", "\\..")) or value == "..":
        return value + "/.."
    cut = max(value.rfind("/"), value.rfind("\\"))
    if cut < 0:
        return ""
    return value[:cut] or value[:1]  # dirname("/x") is "/"


def _limited(values) -> list[str]:
    return list(dict.fromkeys(itertools.islice(values, MAX_CANDIDATES)))


class TooComplex(Exception):
    """score.py spells its paths out through more expressions than are followed."""


class _Scope:
    def __init__(self, parent: _Scope | None, *, is_class: bool = False):
        self.parent = parent
        self.is_class = is_class
        self.names: dict[str, list[ast.AST | None]] = {}  # None: a value that cannot be known

    def assign(self, name: str, value: ast.AST | None):
        self.names.setdefault(name, []).append(value)

    def lookup(self, name: str) -> list[ast.AST | None] | None:
        scope, first = self, True
        while scope is not None:
            if (first or not scope.is_class) and name in scope.names:
                return scope.names[name]
            scope, first = scope.parent, False
        return None


class _Analysis:
    """Import aliases, the names each scope assigns, and every call or `/` with its scope."""

    def __init__(self, tree: ast.Module):
        self.aliases: dict[str, str] = {}
        self.uses: list[tuple[ast.AST, _Scope]] = []
        self._active: set[int] = set()
        self._known: dict[tuple[int, int], list[str]] = {}
        self._steps = 0
        module = _Scope(None)
        pending = [(statement, module) for statement in tree.body]
        while pending:  # iterative: a deeply nested score.py cannot exhaust the stack here
            node, scope = pending.pop()
            pending.extend(self._visit(node, scope))

    # -- collecting --

    def _visit(self, node: ast.AST, scope: _Scope):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
            if not isinstance(node, ast.Lambda):
                scope.assign(node.name, None)
            inner = _Scope(scope)
            arguments = node.args
            positional = arguments.posonlyargs + arguments.args
            defaults = [None] * (len(positional) - len(arguments.defaults)) + list(arguments.defaults)
            for argument, default in [*zip(positional, defaults), *zip(arguments.kwonlyargs, arguments.kw_defaults)]:
                inner.assign(argument.arg, default)  # the default, or None: whatever the caller passes
            for argument in (arguments.vararg, arguments.kwarg):
                if argument is not None:
                    inner.assign(argument.arg, None)
            children = [(child, scope) for child in [*arguments.defaults, *arguments.kw_defaults,
                                                     *getattr(node, "decorator_list", [])] if child is not None]
            body = node.body if isinstance(node.body, list) else [node.body]
            return children + [(child, inner) for child in body]
        if isinstance(node, ast.ClassDef):
            scope.assign(node.name, None)
            inner = _Scope(scope, is_class=True)
            return [(child, scope) for child in [*node.bases, *node.decorator_list]] + \
                [(child, inner) for child in node.body]
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.asname:
                    self.aliases[alias.asname] = alias.name
                else:
                    top = alias.name.split(".")[0]
                    self.aliases[top] = top
        elif isinstance(node, ast.ImportFrom):
            if node.module and not node.level:
                for alias in node.names:
                    self.aliases[alias.asname or alias.name] = f"{node.module}.{alias.name}"
        elif isinstance(node, ast.Assign):
            for target in node.targets:
                self._bind(target, node.value, scope)
        elif isinstance(node, (ast.AnnAssign, ast.NamedExpr)) and node.value is not None:
            self._bind(node.target, node.value, scope)
        elif isinstance(node, ast.AugAssign) and isinstance(node.target, ast.Name):
            scope.assign(node.target.id, ast.BinOp(left=ast.Name(node.target.id), op=node.op, right=node.value))
        elif isinstance(node, (ast.For, ast.AsyncFor, ast.comprehension)):
            self._bind(node.target, None, scope)
        elif isinstance(node, ast.withitem) and node.optional_vars is not None:
            self._bind(node.optional_vars, None, scope)
        elif isinstance(node, ast.ExceptHandler) and node.name:
            scope.assign(node.name, None)
        elif isinstance(node, (ast.Global, ast.Nonlocal)):
            for name in node.names:
                scope.assign(name, None)
        if isinstance(node, ast.Call) or isinstance(node, ast.BinOp) and isinstance(node.op, ast.Div):
            self.uses.append((node, scope))
        return [(child, scope) for child in ast.iter_child_nodes(node)]

    def _bind(self, target: ast.AST, value: ast.AST | None, scope: _Scope):
        if isinstance(target, ast.Name):
            scope.assign(target.id, value)
        elif isinstance(target, (ast.Tuple, ast.List)):
            values = value.elts if isinstance(value, (ast.Tuple, ast.List)) and len(value.elts) == len(target.elts) \
                else [None] * len(target.elts)
            for part, part_value in zip(target.elts, values):
                self._bind(part, part_value, scope)
        elif isinstance(target, ast.Starred):
            self._bind(target.value, None, scope)

    # -- what a call opens --

    def dotted(self, node: ast.AST) -> str | None:
        """The imported name a callee spells (np.load -> numpy.load), or None."""
        parts = []
        while isinstance(node, ast.Attribute):
            parts.append(node.attr)
            node = node.value
        if not isinstance(node, ast.Name):
            return None
        parts.append(self.aliases.get(node.id, node.id))
        return ".".join(reversed(parts))

    def path_expressions(self, node: ast.AST) -> list[ast.AST]:
        """The expressions of a call or `/` that are paths opened, loaded or built."""
        if isinstance(node, ast.BinOp):
            return [node]
        name = self.dotted(node.func) or ""
        method = node.func.attr if isinstance(node.func, ast.Attribute) else name
        if name in JOINS or name in PATH_CLASSES or method == "joinpath":
            return [node]
        if method in PATH_METHODS and isinstance(node.func, ast.Attribute) and name not in OPENERS and not (
                name.startswith(("os.", "shutil.", "glob.", "io.", "gzip.", "tarfile."))):
            return [node.func.value, *self._arguments(node, name)] if method == "open" else [node.func.value]
        return self._arguments(node, name)

    def _arguments(self, node: ast.Call, name: str) -> list[ast.AST]:
        method = node.func.attr if isinstance(node.func, ast.Attribute) else name
        if name in SECOND_ARGUMENT:
            return node.args[1:2]
        if name in ALL_ARGUMENTS:
            return [argument for argument in node.args if not isinstance(argument, ast.Starred)]
        if name in OPENERS or method in OPENER_NAMES or method.startswith(OPENER_PREFIXES):
            arguments = node.args[:1] if node.args and not isinstance(node.args[0], ast.Starred) else []
            return arguments + [keyword.value for keyword in node.keywords if keyword.arg in PATH_KEYWORDS]
        return []

    # -- what an expression's value may be --

    def values(self, node: ast.AST | None, scope: _Scope, depth: int = 0) -> list[str]:
        """The strings `node` may hold, as templates: UNKNOWN for a part not known, ROOT for the artifact."""
        if node is None or depth > MAX_DEPTH or id(node) in self._active:
            return [UNKNOWN]
        key = (id(node), id(scope))
        if key not in self._known:
            self._steps += 1
            if self._steps > MAX_STEPS:
                raise TooComplex(f"more than {MAX_STEPS} expressions to follow")
            self._active.add(id(node))
            try:
                self._known[key] = _limited(self._values(node, scope, depth + 1)) or [UNKNOWN]
            finally:
                self._active.discard(id(node))
        return self._known[key]

    def _values(self, node: ast.AST, scope: _Scope, depth: int):
        values = lambda child: self.values(child, scope, depth)  # noqa: E731
        if isinstance(node, ast.Constant):
            if isinstance(node.value, str):
                return [node.value]
            if isinstance(node.value, bytes):
                return [node.value.decode("latin-1")]
            return [UNKNOWN]
        if isinstance(node, ast.JoinedStr):
            parts = []
            for part in node.values:
                if isinstance(part, ast.Constant):
                    parts.append([str(part.value)])
                elif isinstance(part, ast.FormattedValue) and part.conversion in (-1, ord("s")) \
                        and part.format_spec is None:
                    parts.append(values(part.value))
                else:
                    parts.append([UNKNOWN])
            return ("".join(combination) for combination in itertools.product(*parts))
        if isinstance(node, ast.BinOp):
            if isinstance(node.op, ast.Add):
                return (left + right for left, right in itertools.product(values(node.left), values(node.right)))
            if isinstance(node.op, ast.Div):
                return (_join(left, right) for left, right in itertools.product(values(node.left),
                                                                                values(node.right)))
            if isinstance(node.op, ast.Mod):
                return (_PERCENT_FIELD.sub(UNKNOWN, left) for left in values(node.left))
            return [UNKNOWN]
        if isinstance(node, ast.Name):
            if node.id == "__file__":
                return [ROOT + "/score.py"]
            assigned = scope.lookup(node.id)
            if not assigned:
                return [UNKNOWN]
            return itertools.chain.from_iterable(values(value) for value in assigned)
        if isinstance(node, ast.IfExp):
            return values(node.body) + values(node.orelse)
        if isinstance(node, ast.BoolOp) and isinstance(node.op, ast.Or):
            return itertools.chain.from_iterable(values(value) for value in node.values)
        if isinstance(node, ast.Attribute) and node.attr == "parent":
            return (_dirname(value) for value in values(node.value))
        if isinstance(node, ast.Subscript) and isinstance(node.value, ast.Attribute) and \
                node.value.attr == "parents" and isinstance(node.slice, ast.Constant) and \
                isinstance(node.slice.value, int) and 0 <= node.slice.value < 32:
            results = values(node.value.value)
            for _ in range(node.slice.value + 1):
                results = [_dirname(value) for value in results]
            return results
        if isinstance(node, ast.Call):
            return self._call_values(node, scope, depth)
        return [UNKNOWN]

    def _call_values(self, node: ast.Call, scope: _Scope, depth: int):
        values = lambda child: self.values(child, scope, depth)  # noqa: E731
        if any(isinstance(argument, ast.Starred) for argument in node.args):
            return [UNKNOWN]
        name = self.dotted(node.func) or ""
        method = node.func.attr if isinstance(node.func, ast.Attribute) else None
        if name in JOINS or name in PATH_CLASSES or method == "joinpath":
            parts = ([values(node.func.value)] if method == "joinpath" else []) + [values(arg) for arg in node.args]
            if not parts:
                return ["."]
            return (_fold_join(combination) for combination in itertools.product(*parts))
        if name in ("os.path.dirname", "posixpath.dirname", "ntpath.dirname") and len(node.args) == 1:
            return (_dirname(value) for value in values(node.args[0]))
        if name in SAME_PATH and len(node.args) == 1:
            return values(node.args[0])  # normpath too: a ".." is reported before it is resolved away
        if name == "pathlib.Path.home":
            return ["~"]
        if method in SAME_PATH_METHODS and not node.args:
            return values(node.func.value)
        if method == "format" and isinstance(node.func, ast.Attribute):
            return (_FORMAT_FIELD.sub(UNKNOWN, value) for value in values(node.func.value))
        return [UNKNOWN]


def _fold_join(parts: tuple[str, ...]) -> str:
    result = parts[0]
    for part in parts[1:]:
        result = _join(result, part)
    return result
