"""Model artifacts in the spirit of Oracle ADS: a folder (zipped on upload, the format kind
`artifact`) holding the serialized model, `score.py` (load_model() and predict(data)),
`runtime.yaml` (how to deploy it), `input_schema.json`/`output_schema.json` and
`requirements.txt`, written from the model and a sample of its input:

    from registry_client import prepare, verify
    artifact = prepare(clf, X_test[:20], "churn-artifact")      # scikit-learn, or an ONNX model
    result = verify("churn-artifact", X_test[:5])                 # predict() run in a fresh process
    print(result.prediction)                                      # or result.error, result.stderr
    version.upload("artifact", "churn-artifact")                  # the folder is zipped on the way

A scikit-learn model is saved with joblib (`model.joblib`: the registry scans it without
loading it, and scikit-learn's classes are on its allow-list); an ONNX model as `model.onnx`,
run by onnxruntime, or by onnx's reference evaluator where onnxruntime is missing.

`score.py` opens only files inside the artifact (found from `__file__`), as the registry's
checks want, and its predict() takes what a deployment receives: the JSON payload (a list of
rows, a list of {column: value} records, {column: [values]}, or any of them under "data"), and
returns {"prediction": [...]}, JSON-serializable.

Nothing here is imported by `import registry_client` beyond this module: numpy, pandas,
scikit-learn, joblib and onnx are imported when a model of theirs is prepared.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from registry_client.signature import infer_signature

ARTIFACT_VERSION = "3.0"
SCHEMA_VERSION = "1.1"
MANAGED_FILES = ("score.py", "runtime.yaml", "input_schema.json", "output_schema.json", "requirements.txt",
                 "model.joblib", "model.onnx")
FEATURE_TYPES = {"string": "String", "bool": "Boolean", "datetime": "DateTime", "bytes": "Binary",
                 "object": "Object"}
VERIFY_MARK = "\x1eregistry-client-verify\x1e"


class PrepareError(ValueError):
    """The model, the sample or the destination cannot make a model artifact (what is wrong is said)."""


@dataclass(frozen=True)
class PreparedFolder:
    """A folder prepare() wrote: upload it as the format kind `artifact`."""

    path: Path  # the folder
    framework: str  # scikit-learn | onnx
    model_file: str
    signature: dict  # {"inputs": [...], "outputs": [...]}, as the registry will read it from the schemas
    files: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class VerifyResult:
    """What the artifact's predict() returned on the sample, run as a deployment would run it."""

    ok: bool
    prediction: Any = None  # what predict returned, through JSON
    error: str = ""  # the exception, when it failed ("ValueError: ...")
    stdout: str = ""  # what score.py printed
    stderr: str = ""  # its warnings, and the traceback when it failed
    returncode: int = 0
    seconds: float = 0.0

    def __bool__(self) -> bool:
        return self.ok


# --- prepare ------------------------------------------------------------------------------

def prepare(model: Any, sample: Any, dest: str | os.PathLike, *, inference_env_path: str = "requirements.txt",
            inference_env_slug: str | None = None, inference_env_type: str = "published",
            python_version: str | None = None, provenance: bool | None = None,
            overwrite: bool = False) -> PreparedFolder:
    """Write an artifact for `model` (a fitted scikit-learn estimator or pipeline, or an ONNX
    model: `onnx.ModelProto`, its bytes, or a .onnx path) into the folder `dest`.

    `sample` is some input the model takes (a numpy array, a pandas DataFrame, a list of rows or
    records): the input schema is read from it, and for scikit-learn the output schema from
    the model's prediction on it (ONNX: both from the graph). `inference_env_path` (default
    the artifact's own requirements.txt, pinned to the versions installed here), `_slug` and
    `_type` and `python_version` (default this interpreter's) go into runtime.yaml, with the
    git provenance (see registry_client.provenance) unless `provenance=False`. A folder that
    already holds an artifact is refused unless `overwrite`."""
    dest = Path(dest)
    if dest.exists() and not dest.is_dir():
        raise PrepareError(f"{dest} exists and is not a folder.")
    if dest.is_dir() and any((dest / name).exists() for name in MANAGED_FILES) and not overwrite:
        raise PrepareError(f"{dest} already holds an artifact; pass overwrite=True to write it again.")
    if _is_onnx(model):
        built = _onnx_artifact(model, sample)
    elif _is_sklearn(model):
        built = _sklearn_artifact(model, sample)
    else:
        raise PrepareError(f"Cannot prepare a {type(model).__module__}.{type(model).__qualname__}: give a fitted "
                            "scikit-learn estimator or pipeline, or an ONNX model (onnx.ModelProto, bytes or a "
                            ".onnx path).")
    dest.mkdir(parents=True, exist_ok=True)
    for stale in MANAGED_FILES:  # an overwritten artifact of another framework keeps no old model
        if stale != built["model_file"]:
            (dest / stale).unlink(missing_ok=True)
    built["write_model"](dest / built["model_file"])
    python_version = python_version or f"{sys.version_info.major}.{sys.version_info.minor}"
    texts = {
        "score.py": built["score"],
        "input_schema.json": _schema_document(built["signature"]["inputs"]),
        "output_schema.json": _schema_document(built["signature"]["outputs"]),
        "requirements.txt": "".join(f"{requirement}\n" for requirement in built["requirements"]),
        "runtime.yaml": _runtime_yaml(inference_env_path=inference_env_path, inference_env_slug=inference_env_slug,
                                      inference_env_type=inference_env_type, python_version=python_version,
                                      provenance=provenance),
    }
    for name, text in texts.items():
        (dest / name).write_text(text, encoding="utf-8")
    return PreparedFolder(path=dest, framework=built["framework"], model_file=built["model_file"],
                            signature=built["signature"], files=sorted([built["model_file"], *texts]))


def _is_onnx(model: Any) -> bool:
    if isinstance(model, (bytes, bytearray)):
        return True
    if isinstance(model, (str, os.PathLike)):
        return str(model).lower().endswith(".onnx")
    return hasattr(model, "graph") and hasattr(model, "SerializeToString")


def _is_sklearn(model: Any) -> bool:
    return type(model).__module__.split(".")[0] == "sklearn" and hasattr(model, "predict")


def _versions(*distributions: str) -> list[str]:
    from importlib import metadata

    pinned = []
    for name in distributions:
        try:
            pinned.append(f"{name}=={metadata.version(name)}")
        except metadata.PackageNotFoundError:
            pinned.append(name)
    return pinned


def _sklearn_artifact(model: Any, sample: Any) -> dict:
    try:
        import joblib
    except ImportError as exc:  # scikit-learn depends on it: only a broken install lacks it
        raise PrepareError("scikit-learn models are saved with joblib, which is not installed.") from exc
    frame = _is_dataframe(sample)
    try:
        prediction = model.predict(sample)
    except Exception as exc:
        raise PrepareError(f"The model cannot predict on the sample: {type(exc).__name__}: {exc}") from exc
    signature = infer_signature(sample, prediction)
    _name_prediction(signature)
    columns = [str(column) for column in sample.columns] if frame else []
    dtypes = {str(column): str(dtype) for column, dtype in sample.dtypes.items()} if frame else {}
    array_dtype = str(getattr(sample, "dtype", "")) if _is_array(sample) else ""
    score = SKLEARN_SCORE.format(columns=repr(columns), dtypes=repr(dtypes), array_dtype=repr(array_dtype or None))
    requirements = _versions("scikit-learn", "joblib", "numpy", *(["pandas"] if frame else []))
    return {"framework": "scikit-learn", "model_file": "model.joblib", "signature": signature, "score": score,
            "requirements": requirements, "write_model": lambda path: joblib.dump(model, path)}


def _onnx_artifact(model: Any, sample: Any) -> dict:
    try:
        import onnx
        from onnx import helper
    except ImportError as exc:
        raise PrepareError("Preparing an ONNX model needs the onnx package (pip install onnx).") from exc
    if isinstance(model, (bytes, bytearray)):
        proto = onnx.load_from_string(bytes(model))
    elif isinstance(model, (str, os.PathLike)):
        proto = onnx.load(os.fspath(model), load_external_data=False)
    else:
        proto = model
    onnx.checker.check_model(proto)
    initializers = {item.name for item in proto.graph.initializer}

    def fields(values) -> list[dict]:
        found = []
        for value in values:
            tensor = value.type.tensor_type
            dtype = helper.tensor_dtype_to_np_dtype(tensor.elem_type)
            name = "string" if dtype.kind in "OU" else "bool" if dtype.kind == "b" else dtype.name
            shape = [dim.dim_value if dim.HasField("dim_value") else -1 for dim in tensor.shape.dim]
            found.append({"name": value.name, "dtype": name, "shape": shape or [-1]})
        return found

    inputs = fields(value for value in proto.graph.input if value.name not in initializers)
    outputs = fields(proto.graph.output)
    if not inputs:
        raise PrepareError("The ONNX graph has no input to feed.")
    _check_onnx_sample(sample, inputs)
    signature = {"inputs": inputs, "outputs": outputs}
    feed = {field["name"]: _numpy_dtype(field["dtype"]) for field in inputs}
    score = ONNX_SCORE.format(inputs=repr(feed), outputs=repr([field["name"] for field in outputs]))
    data = proto.SerializeToString()
    return {"framework": "onnx", "model_file": "model.onnx", "signature": signature, "score": score,
            "requirements": _versions("onnxruntime", "numpy"), "write_model": lambda path: path.write_bytes(data)}


def _check_onnx_sample(sample: Any, inputs: list[dict]) -> None:
    if len(inputs) > 1:
        if not isinstance(sample, dict) or set(sample) != {field["name"] for field in inputs}:
            raise PrepareError(f"The model takes {len(inputs)} inputs: give the sample as a dict "
                                f"{{{', '.join(repr(field['name']) for field in inputs)}: ...}}.")
        return
    rank = len(inputs[0]["shape"])
    shape = getattr(sample, "shape", None)
    if shape is not None and len(shape) != rank:
        raise PrepareError(f"The sample has {len(shape)} dimensions; the model's input "
                            f"{inputs[0]['name']!r} has {rank} ({inputs[0]['shape']}).")


def _numpy_dtype(dtype: str) -> str:
    return {"string": "object", "datetime": "datetime64[ns]"}.get(dtype, dtype)


def _name_prediction(signature: dict) -> None:
    outputs = signature["outputs"]
    if len(outputs) == 1 and outputs[0]["name"] == "output":
        outputs[0]["name"] = "prediction"


def _is_dataframe(value: Any) -> bool:
    return hasattr(value, "columns") and hasattr(value, "dtypes") and hasattr(value, "iloc")


def _is_array(value: Any) -> bool:
    return hasattr(value, "dtype") and hasattr(value, "shape") and hasattr(value, "tolist")


def _schema_document(fields: list[dict]) -> str:
    schema = []
    for order, item in enumerate(fields):
        dtype = item["dtype"]
        numeric = dtype.startswith(("float", "int", "uint", "bfloat", "complex"))
        feature_type = FEATURE_TYPES.get(dtype, "Continuous" if numeric else "Object")
        schema.append({"name": item["name"], "dtype": dtype, "shape": item["shape"], "feature_type": feature_type,
                       "required": True, "order": order, "description": item["name"]})
    return json.dumps({"version": SCHEMA_VERSION, "schema": schema}, indent=2) + "\n"


def _runtime_yaml(*, inference_env_path: str, inference_env_slug: str | None, inference_env_type: str,
                  python_version: str, provenance: bool | None) -> str:
    from registry_client import provenance as git_provenance

    def scalar(value: Any) -> str:  # a JSON scalar is a YAML scalar (quoted: "3.10" stays a string)
        return json.dumps(value)

    lines = [f"MODEL_ARTIFACT_VERSION: {scalar(ARTIFACT_VERSION)}", "MODEL_DEPLOYMENT:", "  INFERENCE_CONDA_ENV:",
             f"    INFERENCE_ENV_PATH: {scalar(inference_env_path)}",
             f"    INFERENCE_ENV_TYPE: {scalar(inference_env_type)}",
             f"    INFERENCE_PYTHON_VERSION: {scalar(python_version)}"]
    if inference_env_slug:
        lines.append(f"    INFERENCE_ENV_SLUG: {scalar(inference_env_slug)}")
    captured = git_provenance.capture() if git_provenance.enabled(provenance) else {}
    keys = {"repository": "REPOSITORY_URL", "commit": "GIT_COMMIT", "branch": "GIT_BRANCH", "dirty": "GIT_DIRTY",
            "script": "TRAINING_SCRIPT"}
    known = {keys[key]: value for key, value in captured.items() if key in keys}
    if known:
        lines.append("MODEL_PROVENANCE:")
        lines += [f"  {key}: {scalar(str(value).lower() if isinstance(value, bool) else value)}"
                  for key, value in known.items()]
    return "\n".join(lines) + "\n"


# --- zipping --------------------------------------------------------------------------------

def zip_folder(folder: str | os.PathLike, target: str | os.PathLike) -> Path:
    """The folder's files at the top level of a zip, in a stable order with fixed times (the
    same folder makes the same bytes). Hidden files and folders (.ipynb_checkpoints) and Python
    caches are left out: they are no part of a model and would only be scanned."""
    folder, target = Path(folder), Path(target)
    with zipfile.ZipFile(target, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for path in sorted(folder.rglob("*")):
            relative = path.relative_to(folder)
            if any(part.startswith(".") or part == "__pycache__" for part in relative.parts) or path.suffix == ".pyc":
                continue
            if path.is_symlink():
                raise PrepareError(f"{path} is a symbolic link; an artifact holds files only.")
            if path.is_file():
                info = zipfile.ZipInfo(relative.as_posix(), date_time=(2000, 1, 1, 0, 0, 0))
                info.compress_type = zipfile.ZIP_DEFLATED
                info.external_attr = 0o644 << 16
                with open(path, "rb") as source, archive.open(info, "w") as sink:
                    while block := source.read(1024 * 1024):
                        sink.write(block)
    return target


# --- verify ---------------------------------------------------------------------------------

def payload(sample: Any) -> Any:
    """`sample` as the JSON a deployment would receive (a DataFrame as records, an array as rows)."""
    from registry_client._http import dumps

    if _is_dataframe(sample):
        return json.loads(sample.to_json(orient="records", date_format="iso"))
    if isinstance(sample, dict):
        return {str(key): json.loads(dumps(value)) for key, value in sample.items()}
    return json.loads(dumps(sample))


def verify(dest: str | os.PathLike, sample: Any, *, timeout: float = 300.0,
           python: str | os.PathLike | None = None) -> VerifyResult:
    """Run the artifact in `dest` as a deployment would, in a fresh Python process (`python`,
    default this one): import score.py, call load_model() (it must not return None), then
    predict() on `sample` sent as JSON, and check that what it returns is JSON. Returns what
    happened: `ok`, the `prediction`, or the `error` with the traceback in `stderr`."""
    dest = Path(dest)
    if not (dest / "score.py").is_file():
        return VerifyResult(ok=False, error=f"{dest} has no score.py.")
    body = json.dumps(payload(sample))
    env = {key: value for key, value in os.environ.items() if key != "REGISTRY_TOKEN"}
    env["PYTHONDONTWRITEBYTECODE"] = "1"  # no __pycache__ left in the folder to be zipped
    started = time.monotonic()
    try:
        done = subprocess.run([os.fspath(python or sys.executable), "-c", VERIFY_RUNNER, str(dest.resolve())],
                              input=body, capture_output=True, text=True, timeout=timeout, cwd=dest, env=env,
                              check=False)
    except subprocess.TimeoutExpired as exc:
        return VerifyResult(ok=False, error=f"predict did not return within {timeout:g} s.",
                            stdout=_text(exc.stdout), stderr=_text(exc.stderr), returncode=-1,
                            seconds=time.monotonic() - started)
    seconds = time.monotonic() - started
    printed, _, reported = done.stdout.rpartition(VERIFY_MARK)
    try:
        outcome = json.loads(reported)
    except ValueError:
        return VerifyResult(ok=False, error=f"the process ended with code {done.returncode} before reporting",
                            stdout=done.stdout, stderr=done.stderr, returncode=done.returncode, seconds=seconds)
    return VerifyResult(ok=outcome.get("ok", False), prediction=outcome.get("prediction"),
                        error=outcome.get("error", ""), stdout=printed, stderr=done.stderr,
                        returncode=done.returncode, seconds=seconds)


def _text(value: Any) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else (value or "")


VERIFY_RUNNER = f'''
import importlib.util, json, sys, traceback
sys.dont_write_bytecode = True
folder = sys.argv[1]
mark = {VERIFY_MARK!r}
def report(outcome, code):
    sys.stdout.write(mark + json.dumps(outcome))
    sys.stdout.flush()
    sys.exit(code)
try:
    data = json.loads(sys.stdin.read())
    sys.path.insert(0, folder)
    spec = importlib.util.spec_from_file_location("score", folder + "/score.py")
    score = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(score)
    for name in ("load_model", "predict"):
        if not callable(getattr(score, name, None)):
            raise AttributeError("score.py defines no " + name + "()")
    if score.load_model() is None:
        raise ValueError("load_model() returned None")
    prediction = score.predict(data)
    try:
        text = json.dumps(prediction)
    except (TypeError, ValueError) as exc:
        raise TypeError("predict() returned what JSON cannot carry: " + str(exc)) from exc
except BaseException as exc:
    traceback.print_exc()
    report({{"ok": False, "error": type(exc).__name__ + ": " + str(exc)}}, 1)
report({{"ok": True, "prediction": json.loads(text)}}, 0)
'''


SKLEARN_SCORE = '''"""The scoring entry point of this model artifact (written by registry_client.prepare).

load_model() loads model.joblib from this folder; predict(data) takes the JSON payload a
deployment receives and returns {{"prediction": [...]}}. Edit freely: add preprocessing in
deserialize() or postprocessing in predict(), then check with registry_client.verify().
"""

import json
import os

import joblib

MODEL_FILE = "model.joblib"
HERE = os.path.dirname(os.path.realpath(__file__))
# What the model was trained on: a DataFrame's columns and dtypes, or an array's dtype.
COLUMNS = {columns}
DTYPES = {dtypes}
ARRAY_DTYPE = {array_dtype}


def load_model():
    with open(os.path.join(HERE, MODEL_FILE), "rb") as handle:
        return joblib.load(handle)


def deserialize(data):
    """The payload as the model takes it: a list of rows, a list of {{column: value}} records or
    {{column: [values]}}, possibly under "data", as JSON text or bytes or already parsed."""
    if isinstance(data, (bytes, bytearray)):
        data = data.decode("utf-8")
    if isinstance(data, str):
        data = json.loads(data)
    if isinstance(data, dict) and set(data) == {{"data"}}:
        data = data["data"]
    if COLUMNS:
        import pandas as pd

        if isinstance(data, dict):
            frame = pd.DataFrame(data)
        elif data and isinstance(data[0], dict):
            frame = pd.DataFrame.from_records(data)
        else:
            frame = pd.DataFrame(data, columns=COLUMNS)
        return frame[COLUMNS].astype(DTYPES)
    import numpy as np

    if isinstance(data, dict):
        data = list(zip(*data.values()))
    return np.asarray(data, dtype=ARRAY_DTYPE)


def predict(data, model=load_model()):
    prediction = model.predict(deserialize(data))
    return {{"prediction": prediction.tolist() if hasattr(prediction, "tolist") else list(prediction)}}
'''


ONNX_SCORE = '''"""The scoring entry point of this model artifact (written by registry_client.prepare).

load_model() loads model.onnx from this folder with onnxruntime (or, without it, onnx's
reference evaluator); predict(data) takes the JSON payload a deployment receives (for one
input: its rows; for several: {{input name: rows}}) and returns {{"prediction": [...]}} (the
first output; "outputs" holds them all by name when there are several).
"""

import json
import os

import numpy as np

MODEL_FILE = "model.onnx"
HERE = os.path.dirname(os.path.realpath(__file__))
INPUTS = {inputs}
OUTPUTS = {outputs}


def load_model():
    path = os.path.join(HERE, MODEL_FILE)
    try:
        import onnxruntime
    except ImportError:
        from onnx.reference import ReferenceEvaluator

        return ReferenceEvaluator(path)
    return onnxruntime.InferenceSession(path, providers=["CPUExecutionProvider"])


def deserialize(data):
    if isinstance(data, (bytes, bytearray)):
        data = data.decode("utf-8")
    if isinstance(data, str):
        data = json.loads(data)
    if isinstance(data, dict) and set(data) == {{"data"}}:
        data = data["data"]
    if len(INPUTS) == 1 and not (isinstance(data, dict) and set(data) == set(INPUTS)):
        data = {{next(iter(INPUTS)): data}}
    return {{name: np.asarray(data[name], dtype=dtype) for name, dtype in INPUTS.items()}}


def predict(data, model=load_model()):
    results = model.run(None, deserialize(data))
    values = [result.tolist() if hasattr(result, "tolist") else result for result in results]
    answer = {{"prediction": values[0]}}
    if len(values) > 1:
        answer["outputs"] = dict(zip(OUTPUTS, values))
    return answer
'''
