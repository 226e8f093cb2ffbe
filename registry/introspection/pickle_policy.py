"""The pickle scanner's policy: which imported globals are allowed, dangerous or unvetted.

Pure tables and one function, classify_global(module, name) -> (verdict, reason). It fails
closed: nothing is allowed because it is merely not denied.

Dangerous
    The deny-list: whole modules that run commands, load code or touch files and the network
    (os, subprocess, socket, shutil, importlib, pickle, marshal, ctypes, pandas.io, torch.hub,
    numpy.testing...), builtins such as eval, exec, open, __import__, getattr, operator's
    attrgetter/methodcaller, types.FunctionType/CodeType, names that are dangerous in any
    module (system, popen, read_*, load*, save*, dump*, fetch_*, tofile, rmtree...), libraries'
    test helpers (any module path segment "testing", "_testing" or "conftest"), attribute
    paths that reach a module or a method of an allowed class, special attributes. And
    beyond any deny-list: every global of the standard library (sys.stdlib_module_names,
    private modules included, and Python 2's names as pickle maps them) that is not on the
    allow-list of value types below. The standard library is enumerable, so it is closed.
Allowed (the shipped list)
    Value types of the standard library (builtin containers and numbers, collections,
    datetime, decimal, fractions, uuid.UUID, zoneinfo.ZoneInfo, copyreg's reconstructors,
    _codecs.encode); numpy's array, dtype, scalar, masked array and random generator
    reconstruction and its math ufuncs; joblib's NumpyArrayWrapper; torch's tensor, parameter
    and storage rebuilders and dtypes; pandas' public data structures and their named
    reconstructors; and by rule the model classes of scikit-learn, scipy.sparse, pandas'
    internals, xgboost, lightgbm, catboost, statsmodels and torch.nn.modules (_CLASS_TREES):
    classes only, never functions, outside the parts of each library that do I/O or testing.
    Classes whose constructor loads a file from a path (CONSTRUCT_ONLY) are allowed only when
    the file rebuilds them without calling them, as the libraries' own pickles do.
Unvetted
    Every other (third-party) global: not dangerous by any rule we know, not vetted either.
    The file needs a person's review before it can be published.
"""

from __future__ import annotations

import _compat_pickle
import re
import sys

ALLOWED, DANGEROUS, UNVETTED = "allowed", "dangerous", "unvetted"

# The standard library is enumerable, private modules included, so it is closed: a global from
# it that is not on the allow-list of value types is dangerous (it has dozens of command runners
# and file openers no deny-list would ever name). Python 2 names are included as pickle maps them.
STDLIB_MODULES = frozenset(name.lower() for name in (
    *sys.stdlib_module_names, *_compat_pickle.IMPORT_MAPPING, "__builtin__", "exceptions", "copy_reg",
))

# --- allow-list ---------------------------------------------------------------------------------

_NUMPY_SCALAR_TYPES = {
    "bool", "bool_", "int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64",
    "intc", "uintc", "intp", "uintp", "longlong", "ulonglong", "byte", "ubyte", "short", "ushort",
    "float16", "float32", "float64", "float128", "half", "single", "double", "longdouble",
    "complex64", "complex128", "complex256", "csingle", "cdouble", "clongdouble",
    "str_", "bytes_", "void", "object_", "datetime64", "timedelta64", "generic", "number",
}
# Mathematical ufuncs, as FunctionTransformer(func=numpy.log1p) pickles them.
_NUMPY_UFUNCS = {
    "log", "log1p", "log2", "log10", "exp", "expm1", "exp2", "sqrt", "cbrt", "square", "abs", "absolute",
    "fabs", "sign", "negative", "positive", "reciprocal", "sin", "cos", "tan", "arcsin", "arccos", "arctan",
    "arctan2", "sinh", "cosh", "tanh", "arcsinh", "arccosh", "arctanh", "floor", "ceil", "rint", "trunc",
    "add", "subtract", "multiply", "divide", "true_divide", "floor_divide", "power", "float_power", "mod",
    "remainder", "maximum", "minimum", "fmax", "fmin", "isnan", "isinf", "isfinite", "logaddexp", "hypot",
    "deg2rad", "rad2deg", "clip",
}
_TORCH_DTYPES = {
    "float32", "float64", "float16", "bfloat16", "half", "float", "double", "complex32", "complex64",
    "complex128", "cfloat", "cdouble", "uint8", "uint16", "uint32", "uint64", "int8", "int16", "int32",
    "int64", "short", "int", "long", "bool", "qint8", "quint8", "qint32", "quint4x2", "quint2x4",
    "float8_e4m3fn", "float8_e5m2", "float8_e4m3fnuz", "float8_e5m2fnuz",
    "strided", "sparse_coo", "sparse_csr", "sparse_csc", "sparse_bsr", "sparse_bsc", "_mkldnn",
    "contiguous_format", "channels_last", "channels_last_3d", "preserve_format",
}
# Bytes per element of each PyTorch storage class (legacy files store element counts).
_TORCH_STORAGE_SIZES = {
    "DoubleStorage": 8, "FloatStorage": 4, "HalfStorage": 2, "BFloat16Storage": 2, "LongStorage": 8,
    "IntStorage": 4, "ShortStorage": 2, "CharStorage": 1, "ByteStorage": 1, "BoolStorage": 1,
    "ComplexFloatStorage": 8, "ComplexDoubleStorage": 16, "QUInt8Storage": 1, "QInt8Storage": 1,
    "QInt32Storage": 4, "QUInt4x2Storage": 1, "QUInt2x4Storage": 1, "UntypedStorage": 1,
}

_ALLOWED_EXACT = {
    "builtins": {
        "set", "frozenset", "slice", "complex", "bytearray", "bytes", "list", "dict", "tuple", "int",
        "float", "str", "bool", "range", "object", "Ellipsis", "NotImplemented",
    },
    "copyreg": {"_reconstructor", "__newobj__", "__newobj_ex__"},
    "_codecs": {"encode"},
    "collections": {"OrderedDict", "defaultdict", "deque", "Counter"},
    "datetime": {"datetime", "date", "time", "timedelta", "timezone"},
    "decimal": {"Decimal"},
    "fractions": {"Fraction"},
    "uuid": {"UUID"},
    "types": {"SimpleNamespace"},  # statsmodels keeps fit details in one
    "numpy": {"dtype", "ndarray", "matrix", *_NUMPY_SCALAR_TYPES, *_NUMPY_UFUNCS},
    "numpy.core.multiarray": {"_reconstruct", "scalar", "dtype"},
    "numpy._core.multiarray": {"_reconstruct", "scalar", "dtype"},
    "numpy.core.numeric": {"_frombuffer"},
    "numpy._core.numeric": {"_frombuffer"},
    # Imports a ufunc by module and name: handled as an import (see _IMPORT_GADGETS).
    "numpy.core": {"_ufunc_reconstruct"},
    "numpy._core": {"_ufunc_reconstruct"},
    "numpy.ma.core": {"_mareconstruct", "MaskedArray"},
    "numpy.ma": {"MaskedArray"},
    # zoneinfo looks zones up by key in the system's tz database, refusing absolute and ".." keys;
    # pandas pickles a ZoneInfo as getattr(ZoneInfo, "_unpickle")(key, from_cache).
    "zoneinfo": {"ZoneInfo", "ZoneInfo._unpickle"},
    # pandas' reconstructors of its data structures (each rebuilds one object from its state).
    "pandas.core.indexes.base": {"_new_Index"},
    "pandas.core.indexes.period": {"_new_PeriodIndex"},
    "pandas.core.indexes.datetimes": {"_new_DatetimeIndex"},
    "pandas.core.internals.blocks": {"new_block", "new_block_2d"},
    "pandas._libs.internals": {"_unpickle_block"},
    "pandas._libs.tslibs.nattype": {"_nat_unpickle"},
    "pandas._libs.tslibs.timedeltas": {"_timedelta_unpickle"},
    "pandas._libs.tslibs.timestamps": {"_unpickle_timestamp"},
    "pandas": {
        "DataFrame", "Series", "Index", "RangeIndex", "MultiIndex", "CategoricalIndex", "DatetimeIndex",
        "TimedeltaIndex", "PeriodIndex", "IntervalIndex", "Categorical", "CategoricalDtype", "DatetimeTZDtype",
        "PeriodDtype", "IntervalDtype", "SparseDtype", "StringDtype", "BooleanDtype", "Int8Dtype", "Int16Dtype",
        "Int32Dtype", "Int64Dtype", "UInt8Dtype", "UInt16Dtype", "UInt32Dtype", "UInt64Dtype", "Float32Dtype",
        "Float64Dtype", "Timestamp", "Timedelta", "Period", "Interval", "NA", "NaT", "DateOffset", "Flags",
    },
    # Cython classes pickle through newObj(cls), which is cls.__new__(cls).
    "sklearn.metrics._dist_metrics": {"newObj"},
    "sklearn.neighbors._kd_tree": {"newObj"},
    "sklearn.neighbors._ball_tree": {"newObj"},
    "sklearn.neighbors._binary_tree": {"newObj"},
    "numpy.matrixlib.defmatrix": {"matrix"},
    "numpy.random._pickle": {"__randomstate_ctor", "__generator_ctor", "__bit_generator_ctor"},
    "numpy.random.mtrand": {"RandomState"},
    "numpy.random._generator": {"Generator"},
    "numpy.random._mt19937": {"MT19937"},
    "numpy.random._pcg64": {"PCG64", "PCG64DXSM"},
    "numpy.random._philox": {"Philox"},
    "numpy.random._sfc64": {"SFC64"},
    "numpy.random.bit_generator": {"SeedSequence", "__pyx_unpickle_SeedSequence"},
    "joblib.numpy_pickle": {"NumpyArrayWrapper"},
    "sklearn.externals.joblib.numpy_pickle": {"NumpyArrayWrapper"},
    "torch": {"Size", "Tensor", "device", "dtype", "layout", "memory_format", "per_tensor_affine",
              "per_channel_affine", "per_tensor_symmetric", "per_channel_symmetric",
              "per_channel_affine_float_qparams", *_TORCH_DTYPES},
    # Activation functions that modules keep as attributes (TransformerEncoderLayer's activation).
    "torch.nn.functional": {"relu", "gelu", "silu", "mish", "elu", "selu", "celu", "leaky_relu", "tanh", "sigmoid",
                            "softmax", "log_softmax", "softplus", "hardswish", "hardsigmoid", "relu6", "glu"},
    "torch._utils": {
        "_rebuild_tensor", "_rebuild_tensor_v2", "_rebuild_tensor_v3", "_rebuild_parameter",
        "_rebuild_parameter_with_state", "_rebuild_qtensor", "_rebuild_sparse_tensor",
        "_rebuild_nested_tensor", "_rebuild_device_tensor_from_numpy",
        "_rebuild_device_tensor_from_cpu_tensor", "_rebuild_meta_tensor_no_storage",
        "_rebuild_wrapper_subclass",
    },
    "torch._tensor": {"_rebuild_from_type_v2", "_rebuild_from_type"},
    "torch.storage": {"UntypedStorage", "TypedStorage"},
    "torch.nn.parameter": {"Parameter", "Buffer", "UninitializedParameter", "UninitializedBuffer"},
    "torch.serialization": {"_get_layout"},
}
# Libraries whose model classes are allowed by rule, because they live in hundreds of private
# modules that change between releases: a class (a capitalised name, or Cython's
# __pyx_unpickle_<Class> reconstructor of one) from these module trees. Functions are never
# allowed by rule, nor anything from a module that reads or writes files, downloads data or
# exists for tests (any module path with "test" in it is excluded everywhere).
# (tree, excluded subtrees, the condition on the name when it is not "a class name")
_CLASS_TREES = (
    ("sklearn", ("sklearn.datasets", "sklearn.externals", "sklearn.utils._joblib", "sklearn.utils._show_versions",
                 "sklearn.utils._mocking", "sklearn.utils.estimator_checks",
                 "sklearn._build_utils", "sklearn.__check_build", "sklearn.experimental"), None),
    ("scipy.sparse", ("scipy.sparse.linalg", "scipy.sparse.csgraph"), lambda name: name.endswith(("_matrix", "_array"))),
    ("pandas.arrays", (), lambda name: name.endswith("Array")),
    ("pandas.core", ("pandas.core.computation", "pandas.core.interchange", "pandas.core.groupby", "pandas.core.window",
                     "pandas.core.resample", "pandas.core.reshape", "pandas.core.tools", "pandas.core.methods",
                     "pandas.core.util", "pandas.core.strings", "pandas.core.config_init", "pandas.core.api",
                     "pandas.core.apply", "pandas.core.ops", "pandas.core.accessor"), None),
    ("pandas._libs", ("pandas._libs.lib", "pandas._libs.parsers", "pandas._libs.writers", "pandas._libs.json",
                      "pandas._libs.testing", "pandas._libs.window", "pandas._libs.sas"), None),
    ("pandas.tseries.offsets", (), None),
    ("xgboost.sklearn", (), lambda name: name.startswith("XGB")),
    ("xgboost.core", (), lambda name: name == "Booster"),
    ("lightgbm.sklearn", (), lambda name: name.startswith("LGBM")),
    ("lightgbm.basic", (), lambda name: name == "Booster"),
    ("catboost.core", (), lambda name: name.startswith("CatBoost")),
    ("statsmodels", ("statsmodels.iolib", "statsmodels.datasets", "statsmodels.sandbox", "statsmodels.graphics",
                     "statsmodels.api", "statsmodels.tools.web", "statsmodels.tools.print_version",
                     "statsmodels.tsa.x13"),
     # and its Cython state-space classes, one per BLAS type: sKalmanFilter, dInitialization...
     lambda name: _is_class_name(name) or re.fullmatch(r"[sdcz][A-Z][A-Za-z0-9]*", name) is not None),
    ("torch.nn.modules", (), None),
)
# Allowed classes whose constructor loads a model from a path it is given: a file may only
# rebuild them without calling them (NEWOBJ, copyreg's reconstructors), as the libraries do.
CONSTRUCT_ONLY = {("xgboost.core", "Booster"), ("lightgbm.basic", "Booster")}

# --- deny-list ----------------------------------------------------------------------------------

# Modules (and every submodule) that run commands, touch files or the network, import or
# load code, or change the interpreter. Matched case-insensitively on the module and on the
# full dotted path module.name, so ("numpy", "testing.x") counts as numpy.testing.
_DANGEROUS_MODULES = {
    "os", "posix", "nt", "_posixsubprocess", "subprocess", "_winapi", "msvcrt", "winreg", "_winreg",
    "multiprocessing", "concurrent", "asyncio", "socket", "_socket", "socketserver", "ssl", "select",
    "http", "urllib", "urllib2", "urllib3", "requests", "httpx", "aiohttp", "ftplib", "smtplib", "poplib",
    "imaplib", "telnetlib", "nntplib", "xmlrpc", "xmlrpclib", "shutil", "sys", "importlib", "imp",
    "pkgutil", "zipimport", "runpy", "pty", "tty", "termios", "fcntl", "webbrowser", "antigravity",
    "this", "pickle", "_pickle", "cpickle", "dill", "cloudpickle", "marshal", "shelve", "dbm", "code",
    "codeop", "ctypes", "_ctypes", "cffi", "pydoc", "inspect", "gc", "tempfile", "pathlib", "io", "_io",
    "glob", "fileinput", "tarfile", "zipfile", "gzip", "bz2", "lzma", "signal", "_signal", "threading",
    "_thread", "timeit", "trace", "profile", "cprofile", "pdb", "bdb", "doctest", "unittest",
    "distutils", "setuptools", "pip", "venv", "ensurepip", "site", "commands", "popen2", "platform",
    "sqlite3", "mmap", "resource", "logging.config", "idlelib", "tkinter", "turtle", "ipython",
    "ipykernel", "numpy.testing", "numpy.f2py", "numpy.distutils", "numpy.ctypeslib", "numpy.lib.npyio",
    "numpy.lib._npyio_impl", "numpy.lib.format", "pandas.io", "torch.hub", "torch.jit", "torch.package",
    "torch.utils.cpp_extension", "torch.ops", "torch.classes", "torch.distributed", "torch.multiprocessing",
    "torch._dynamo", "torch._inductor",
}
# os.path and its platform modules only compute path strings.
_SAFE_SUBMODULES = {"os.path"}
_DANGEROUS_BY_MODULE = {
    "builtins": {
        "eval", "exec", "execfile", "compile", "open", "__import__", "getattr", "setattr", "delattr",
        "globals", "locals", "vars", "input", "raw_input", "breakpoint", "help", "exit", "quit", "reload",
        "file", "memoryview", "super", "classmethod", "staticmethod", "property",
    },
    "operator": {"attrgetter", "methodcaller", "itemgetter", "getitem", "setitem", "delitem", "call"},
    "_operator": {"attrgetter", "methodcaller", "itemgetter", "getitem", "setitem", "delitem", "call"},
    "types": {
        "functiontype", "codetype", "methodtype", "lambdatype", "moduletype", "builtinfunctiontype",
        "builtinmethodtype", "new_class", "generatortype", "coroutinetype",
    },
    # Registering an extension code makes a later EXT opcode import anything.
    "copyreg": {"add_extension", "remove_extension", "clear_extension_cache"},
}
# Names that are dangerous in any module (checked on every segment of a dotted name).
_DANGEROUS_NAMES = {
    "eval", "exec", "execfile", "compile", "__import__", "system", "popen", "getoutput",
    "getstatusoutput", "check_output", "check_call", "run_path", "run_module", "import_module",
    "load_module", "load_source", "getattr", "setattr", "delattr", "globals", "locals", "vars",
    "breakpoint", "loads", "load", "dump", "dumps", "unsafe_load", "full_load", "read_pickle",
    "to_pickle", "save", "savez", "savez_compressed", "savetxt", "tofile", "memmap", "open_memmap",
    "fromfile", "loadtxt", "genfromtxt", "fromregex", "rmtree", "remove", "unlink", "rmdir",
    "removedirs", "rename", "renames", "open", "fdopen", "write_text", "write_bytes", "mkdir",
    "makedirs", "chmod", "chown", "kill", "killpg", "startfile", "_load_from_bytes", "attrgetter",
    "methodcaller", "dump_svmlight_file", "add_extension",
}
_DANGEROUS_NAME_PATTERN = re.compile(
    r"spawn[lv]p?e?|exec[lv]p?e?|posix_spawnp?|fork\w*|popen\d*"
    # Readers, loaders and writers of files and URLs in any library: read_csv, load_npz,
    # _load_from_bytes, fetch_openml, urlretrieve, save_model, dump_svmlight_file...
    r"|_*(read|load|fetch|download|save|dump|write|urlopen|urlretrieve)(_\w*|s|txt|file)?"
    r"|\w+_(read|load|fetch|download|save|dump|write)(_\w*)?"
    # Constructors from a hub, a file or a URL (transformers' from_pretrained runs remote code).
    r"|from_(pretrained|file|url|path|hub|single_file)")
# Test helpers run code by design (sklearn.utils._testing.assert_run_python_script...).
_TEST_HELPER_SEGMENT = re.compile(r"_*testing|conftest")
# An attribute with one of these names is (almost always) the module itself: sklearn.x.os
# is os once imported there.
_MODULE_ATTRIBUTES = {
    "os", "sys", "subprocess", "builtins", "__builtin__", "posix", "nt", "shutil", "socket", "importlib",
    "pickle", "marshal", "ctypes", "runpy", "pty",
}
_WRAPPER_CLASSES = {("joblib.numpy_pickle", "NumpyArrayWrapper"), ("sklearn.externals.joblib.numpy_pickle",
                                                                   "NumpyArrayWrapper")}
_LEGACY_WRAPPER_NAMES = {"NDArrayWrapper", "ZNDArrayWrapper"}

# Allowed functions that import by name: their constant arguments are classified as globals.
_IMPORT_GADGETS = {("numpy.core", "_ufunc_reconstruct"), ("numpy._core", "_ufunc_reconstruct")}
# Allowed functions that call (or instantiate) some of their arguments: those arguments must
# be imported globals, or a chain of allowed calls could call the result of a call.
_FORWARDERS = {
    ("copyreg", "_reconstructor"): (0, 1),
    ("copyreg", "__newobj__"): (0,),
    ("copyreg", "__newobj_ex__"): (0,),
    ("torch._tensor", "_rebuild_from_type_v2"): (0, 1),
    ("torch._tensor", "_rebuild_from_type"): (0, 1),
    ("torch._utils", "_rebuild_wrapper_subclass"): (0,),
    ("collections", "defaultdict"): (0,),  # the default factory is called on a missing key
    ("numpy.core.multiarray", "_reconstruct"): (0,),
    ("numpy._core.multiarray", "_reconstruct"): (0,),
    ("numpy.ma.core", "_mareconstruct"): (0, 1),
    # (bit generator or its name, constructor): the constructor is called.
    ("numpy.random._pickle", "__randomstate_ctor"): (1,),
    ("numpy.random._pickle", "__generator_ctor"): (1,),
    ("numpy.random._pickle", "__bit_generator_ctor"): (0,),
    # cls.__new__(cls, ...) of the class they are given.
    ("pandas.core.indexes.base", "_new_Index"): (0,),
    ("pandas.core.indexes.period", "_new_PeriodIndex"): (0,),
    ("pandas.core.indexes.datetimes", "_new_DatetimeIndex"): (0,),
    ("sklearn.metrics._dist_metrics", "newObj"): (0,),
    ("sklearn.neighbors._kd_tree", "newObj"): (0,),
    ("sklearn.neighbors._ball_tree", "newObj"): (0,),
    ("sklearn.neighbors._binary_tree", "newObj"): (0,),
}


def forwarded_positions(key: tuple[str, str]) -> tuple[int, ...]:
    """Which arguments an allowed function calls or instantiates (Cython's __pyx_unpickle_X(cls, ...) too)."""
    if key[1].startswith("__pyx_unpickle_"):
        return (0,)
    return _FORWARDERS.get(key, ())
# getattr(<imported class>, "<constant name>") is how some types pickle a classmethod (zoneinfo's
# ZoneInfo._unpickle): used only that way, it is an import of class.name and classified as one.
# Any other use of it (called on something else, stored, passed along) is dangerous.
ATTRIBUTE_GETTERS = {("builtins", "getattr")}
_NUMPY_DTYPE = {("numpy", "dtype"), ("numpy.core.multiarray", "dtype"), ("numpy._core.multiarray", "dtype")}


def _py3_name(module: str, name: str) -> tuple[str, str]:
    """What Python 3 imports for a Python 2 name (pickle's fix_imports for protocols 0-2)."""
    if (module, name) in _compat_pickle.NAME_MAPPING:
        return _compat_pickle.NAME_MAPPING[(module, name)]
    return _compat_pickle.IMPORT_MAPPING.get(module, module), name


def _under(path: str, prefix: str) -> bool:
    return path == prefix or path.startswith(prefix + ".")


def _is_class_name(name: str) -> bool:
    """A class by the naming convention every one of these libraries follows (Tree, _BinMapper)."""
    name = name.removeprefix("__pyx_unpickle_").lstrip("_")
    return name[:1].isupper() and name.isidentifier()


def _is_allowed(module: str, name: str) -> bool:
    if name in _ALLOWED_EXACT.get(module, ()):
        return True
    if "." in name or name.startswith("__") and name.endswith("__") or "test" in module.lower():
        return False
    if module == "numpy.dtypes":
        return name.endswith("DType")
    if module in ("torch", "torch.cuda"):
        return name in _TORCH_STORAGE_SIZES
    for tree, excluded, condition in _CLASS_TREES:
        if _under(module, tree):
            return (not any(_under(module, subtree) for subtree in excluded)
                    and (condition(name) if condition else _is_class_name(name)))
    return False


def _danger(module: str, name: str) -> str | None:
    """Why importing module.name is dangerous, or None."""
    if not module:
        return None  # importing "" fails before anything runs
    low_module = module.strip().lower()
    low_path = f"{low_module}.{name.strip().lower()}"
    for path in (low_module, low_path):
        if any(_under(path, safe) for safe in _SAFE_SUBMODULES):
            continue
        parts = path.split(".")
        for end in range(1, len(parts) + 1):
            prefix = ".".join(parts[:end])
            if prefix in _DANGEROUS_MODULES:
                return f"module {prefix} can run commands, load code or touch files"
    if any(_TEST_HELPER_SEGMENT.fullmatch(part.strip()) for part in low_module.split(".")):
        return f"module {module} is a library's test helpers, which run code by design"
    segments = name.split(".")
    if segments[0].strip().lower() in _DANGEROUS_BY_MODULE.get(low_module, ()):
        return f"{module}.{segments[0]} can run code or reach arbitrary objects"
    for segment in segments:
        low = segment.strip().lower()
        if low in _DANGEROUS_NAMES or _DANGEROUS_NAME_PATTERN.fullmatch(low):
            return f"{segment} can run code, load pickles or touch files"
        if low in _MODULE_ATTRIBUTES:
            return f"attribute {segment} reaches the {low} module"
        if len(low) > 4 and low.startswith("__") and low.endswith("__") and not (
                _is_allowed(module, name) or _is_allowed(*_py3_name(module, name))):
            return f"special attribute {segment}"
    if len(segments) > 1 and name not in _ALLOWED_EXACT.get(module, ()):
        parent = ".".join(segments[:-1])
        if _is_allowed(module, parent) or _is_allowed(*_py3_name(module, parent)):
            return (f"{module}.{name} reaches an attribute of an allowed object; methods such as "
                    "numpy.ndarray.tofile write files")
    if segments[-1] in _LEGACY_WRAPPER_NAMES:
        return "joblib < 0.10 array wrapper: loads a side file from disk with allow_pickle"
    if segments[-1] == "NumpyArrayWrapper" and (module, name) not in _WRAPPER_CLASSES:
        return "joblib array wrapper under an unusual name: cannot tell whether raw array data follows"
    return None


def classify_global(module: str, name: str) -> tuple[str, str | None]:
    """(verdict, reason) for importing `name` from `module`; reason is set when dangerous.

    Dangerous: on the deny-list, or from the standard library and not allowed. Allowed: on the
    allow-list. Unvetted: any other (third-party) global, which needs a person's approval.
    """
    candidates = [(module, name)]
    mapped = _py3_name(module, name)
    if mapped != (module, name):
        candidates.append(mapped)
    for candidate_module, candidate_name in candidates:
        reason = _danger(candidate_module, candidate_name)
        if reason:
            return DANGEROUS, reason
    if any(_is_allowed(*candidate) for candidate in candidates):
        return ALLOWED, None
    for candidate_module, candidate_name in candidates:
        top_level = candidate_module.split(".", 1)[0].strip().lower()
        if top_level in STDLIB_MODULES:
            return DANGEROUS, (f"{candidate_module}.{candidate_name} is from the standard library and not on "
                               "the allow-list of value types")
    return UNVETTED, None

