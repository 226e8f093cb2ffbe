"""Write the shipped list of model classes (allowed_classes.txt) from the installed libraries.

    python -m registry.introspection.allowlist_generate > registry/introspection/allowed_classes.txt

A development tool, never imported by the registry or its workers: it imports the model
libraries to enumerate, module by module, the classes each one defines, as pickle names
them (the class's __module__ and __qualname__). A class is listed only when

- it lives in one of the libraries' model trees (LIBRARIES), outside the parts that do I/O,
  networking, plotting or testing;
- it is a class of that library, named as a class, found in that module under its own name
  (its defining module, or one the library re-exports it from, as older releases pickled
  it); re-exports of other libraries' objects, such as pathlib.Path or functools.partial
  imported into a sklearn module, are left out;
- every base class comes from the library itself, the numeric ecosystem it builds on, or
  the standard library's abstract and value types (SAFE_BASE_MODULES): a subclass of
  threading.Thread, io.BytesIO, pickle.Unpickler or ctypes.Structure is left out;
- the scanner's deny rules do not call its name dangerous.

Cython classes are rebuilt by a function __pyx_unpickle_<Class> of their module: it is
listed with its class. The libraries' data-structure reconstructors that are functions
(pandas' _new_Index...) are not generated; pickle_policy names them one by one.
"""

from __future__ import annotations

import contextlib
import importlib
import io
import pkgutil
import re
import sys
import tempfile
import warnings
from contextlib import redirect_stdout

# (package, excluded subtrees, name condition or None for "a class name")
LIBRARIES = (
    ("sklearn", ("sklearn.datasets", "sklearn.externals", "sklearn.utils._joblib", "sklearn.utils._show_versions",
                 "sklearn.utils._mocking", "sklearn.utils.estimator_checks", "sklearn._build_utils",
                 "sklearn.__check_build", "sklearn.experimental", "sklearn.callback", "sklearn.inspection._plot",
                 "sklearn.utils._plotting", "sklearn.utils._optional_dependencies"), None),
    ("scipy.sparse", ("scipy.sparse.linalg", "scipy.sparse.csgraph"), lambda name: name.endswith(("_matrix", "_array"))),
    ("pandas", ("pandas.io", "pandas.plotting", "pandas.testing", "pandas._testing", "pandas.util", "pandas.api",
                "pandas.compat", "pandas._config", "pandas.core.computation", "pandas.core.interchange",
                "pandas.core.groupby", "pandas.core.window", "pandas.core.resample", "pandas.core.reshape",
                "pandas.core.tools", "pandas.core.methods", "pandas.core.util", "pandas.core.strings",
                "pandas.core.config_init", "pandas.core.apply", "pandas.core.ops", "pandas.core.accessor",
                "pandas._libs.lib", "pandas._libs.parsers", "pandas._libs.writers", "pandas._libs.json",
                "pandas._libs.testing", "pandas._libs.window", "pandas._libs.sas", "pandas.errors", "pandas.conftest",
                "pandas._version", "pandas.core.dtypes.generic"), None),
    ("xgboost", ("xgboost.dask", "xgboost.spark", "xgboost.testing", "xgboost.plotting", "xgboost.tracker",
                 "xgboost.collective", "xgboost.federated", "xgboost.callback"),
     lambda name: name.startswith("XGB") or name == "Booster"),
    ("lightgbm", ("lightgbm.dask", "lightgbm.plotting", "lightgbm.callback"),
     lambda name: name.startswith("LGBM") or name == "Booster"),
    ("catboost", ("catboost.datasets", "catboost.utils", "catboost.widget", "catboost.eval", "catboost.plot_helpers",
                  "catboost.dev_utils", "catboost.monoforest", "catboost.text_processing", "catboost.metrics"),
     lambda name: name.startswith("CatBoost")),
    ("statsmodels", ("statsmodels.iolib", "statsmodels.datasets", "statsmodels.sandbox", "statsmodels.graphics",
                     "statsmodels.api", "statsmodels.tools.web", "statsmodels.tools.print_version",
                     "statsmodels.tsa.x13", "statsmodels.conftest", "statsmodels.compat", "statsmodels.tools.sm_exceptions",
                     "statsmodels.tools.docstring", "statsmodels.tools.testing", "statsmodels.tools.rng_qrng"),
     # its Cython state-space classes come one per BLAS type: sKalmanFilter, dInitialization...
     lambda name: _is_class_name(name) or re.fullmatch(r"[sdcz][A-Z][A-Za-z0-9]*", name) is not None),
    ("torch.nn.modules", (), None),
    ("torch.nn.parameter", (), None),
)
# Bases a listed class may have outside its library: abstract and value types only.
SAFE_BASE_MODULES = {
    "builtins", "abc", "typing", "typing_extensions", "enum", "collections", "collections.abc", "_collections_abc",
    "numbers", "datetime", "decimal", "fractions", "dataclasses", "numpy", "scipy", "pandas", "sklearn", "torch",
}


def _is_class_name(name: str) -> bool:
    name = name.lstrip("_")
    return name[:1].isupper() and name.isidentifier()


def _under(path: str, prefix: str) -> bool:
    return path == prefix or path.startswith(prefix + ".")


def _safe_base(base: type, library: str) -> bool:
    module = base.__module__ or ""
    top = module.split(".", 1)[0]
    return top == library.split(".", 1)[0] or module in SAFE_BASE_MODULES or top in SAFE_BASE_MODULES


_SKIPPED_MODULE = re.compile(r"(^|\.)_*(tests?|testing|conftest|benchmarks?|examples?)(\.|$)")


def _import(name: str):
    try:
        with redirect_stdout(io.StringIO()):
            return importlib.import_module(name)
    except BaseException:  # noqa: BLE001 - a missing optional dependency: that module is not listed
        return None


def _modules(package: str, excluded: tuple[str, ...]):
    """(name, module) of the package and its submodules, depth first, skipping excluded trees."""
    pending = [package]
    while pending:
        name = pending.pop()
        if any(_under(name, subtree) for subtree in excluded) or _SKIPPED_MODULE.search(name):
            continue
        module = _import(name)
        if module is None:
            continue
        yield name, module
        if hasattr(module, "__path__"):
            pending += [f"{name}.{info.name}" for info in pkgutil.iter_modules(module.__path__)]


def generate():
    from registry.introspection.pickle_policy import DANGEROUS, classify_global

    listed, skipped = set(), []
    for package, excluded, condition in LIBRARIES:
        for module_name, module in _modules(package, excluded):
            for attribute, value in list(vars(module).items()):
                # Classes of this library, under their own module and wherever the library
                # re-exports them (an older release pickled pandas.DataFrame as pandas.core.frame).
                if (not isinstance(value, type) or value.__qualname__ != attribute
                        or (value.__module__ or "").split(".")[0] != package.split(".")[0]):
                    continue
                if not (condition(attribute) if condition else _is_class_name(attribute)):
                    continue
                foreign = [base for base in value.__mro__[1:] if not _safe_base(base, package)]
                if foreign:
                    skipped.append(f"{module_name}.{attribute}: base {foreign[0].__module__}.{foreign[0].__qualname__}")
                    continue
                if classify_global(module_name, attribute)[0] == DANGEROUS:
                    skipped.append(f"{module_name}.{attribute}: dangerous by name")
                    continue
                listed.add((module_name, attribute))
                reconstructor = f"__pyx_unpickle_{attribute}"
                if callable(vars(module).get(reconstructor)):
                    listed.add((module_name, reconstructor))
    return sorted(listed), skipped


def main():
    warnings.filterwarnings("ignore")
    # Some modules write files into the working directory when imported (statsmodels' result
    # fixtures): import them from a scratch directory, never the checkout.
    with tempfile.TemporaryDirectory() as scratch, contextlib.chdir(scratch):
        listed, skipped = generate()
    versions = []
    for package in dict.fromkeys(package.split(".")[0] for package, _, _ in LIBRARIES):
        module = sys.modules.get(package)
        versions.append(f"{package} {getattr(module, '__version__', '?')}")
    print("# Model classes the pickle scanner allows: one 'module name' per line.")
    print("# Generated by python -m registry.introspection.allowlist_generate from " + ", ".join(versions) + ".")
    for module_name, attribute in listed:
        print(f"{module_name} {attribute}")
    for line in skipped:
        print(f"left out: {line}", file=sys.stderr)


if __name__ == "__main__":
    main()
