"""Zip model artifacts (in the spirit of ADS model artifacts) and zipped TF SavedModels.

An artifact is a zip with, at its top level (or inside one top-level folder, as zipping a
directory produces): runtime.yaml (how to deploy: conda environment, Python version),
score.py (load_model() and predict(data), opening and loading only files inside the
artifact: no absolute path, no ".."; see score_paths.py), optional
input_schema.json/output_schema.json, an optional contract file (contract.yaml or
serving.yaml) and the serialized model(s). Archive-wide checks come from archives.SafeZip.

Every check is a dict {key, category, description, passed, message}. Checks that depend on a
missing file are not listed; the missing file's own check says what is wrong.

Status (the worst wins):
- QUARANTINED when the archive structure is an attack (see archives.py), when runtime.yaml
  or the contract uses YAML tags that construct Python objects (python/object, python/name,
  python/module: harmless to safe_load, which refuses them, but code execution for any
  consumer that uses yaml.load), or when a serialized model inside is quarantined.
- FAILED when any check fails: the artifact could not be deployed as it is, so it must not
  be published; the message names the failed checks.
- REVIEW when every check passes but some serialized models inside are in review (third-party
  imports not on the allow-list): details["unvetted"] is the union of their unvetted lists,
  one entry per import, "called" if it is called in any of them; the message names them.
  Their serialized_model checks do not pass, but only wait for a person's approval.
- READY otherwise.

Nothing from the archive is imported, executed or extracted: score.py is read with ast.parse,
YAML with yaml.safe_load, and each serialized model is spooled to an anonymous temporary file
and handed to an inspector. Members are serialized models by their content or their name.
Pickle-family members (pkl, joblib, pt) go to the `scan_serialized(kind, fileobj) -> Report`
callback; without one they cannot be checked, and the artifact fails. ONNX, PMML,
safetensors, HDF5 and R members are read by this package's own inspectors. Every other
member, whatever its name (README, weights.bin), is read as pickle.load would read it
(pickles.scan_as_loaded, decompressed only as far as that reading goes): a member pickle.load
acts on is a serialized model too, and a model file that is also a pickle is judged both
ways. Zips inside the archive are opened (up to the nesting limit) and their members checked
the same way.

Signature: a contract file wins over the schema files. details["signature_source"] is
"contract" or "introspection" (schemas), details["signature_file"] names the file.
"""

import ast
import io
import json
import re
import tempfile

import yaml

from registry import signatures
from registry.introspection import headers, protowire, savedmodel_proto
from registry.introspection.archives import DEFAULT_LIMITS, ArchiveError, ArchiveLimits, SafeZip, normalized_name
from registry.introspection.pickles import scan_as_loaded
from registry.introspection.report import FAILED, QUARANTINED, READY, REVIEW, SEVERITY, Report, combine, merge_unvetted
from registry.introspection.score_paths import TooComplex, outside_paths

MAX_RUNTIME_YAML_BYTES = 1024 * 1024
MAX_SCORE_PY_BYTES = 2 * 1024 * 1024
MAX_SCHEMA_BYTES = 16 * 1024 * 1024
MAX_CONTRACT_BYTES = 1024 * 1024
MAX_SCHEMA_FIELDS = 100_000
MAX_LISTED = 1000
SNIFF_BYTES = 64 * 1024

PICKLE_KINDS = {"pkl", "joblib", "pt"}
EXTENSION_KINDS = {
    ".pkl": "pkl", ".pickle": "pkl", ".sav": "pkl", ".dill": "pkl", ".cloudpickle": "pkl",
    ".joblib": "joblib", ".jbl": "joblib",
    ".pt": "pt", ".pth": "pt", ".ckpt": "pt",
    ".onnx": "onnx", ".pmml": "pmml", ".safetensors": "safetensors",
    ".h5": "h5", ".hdf5": "h5", ".keras": "zip",
    ".rda": "rda", ".rdata": "rda", ".rds": "rda",
    ".npy": "npy", ".npz": "zip", ".zip": "zip",
}
CONTRACT_FILES = ("contract.yaml", "contract.yml", "serving.yaml", "serving.yml")
UNSAFE_YAML_TAG = re.compile(r"^tag:yaml\.org,2002:python/(object|name|module)")
ENV_TYPES = {"published", "data_science"}
PROFILES = {"numerical", "text", "image"}
# Contract and schema type names (Hydrosphere/TensorFlow, numpy, pandas) to signature dtypes.
DTYPE_ALIASES = {
    "half": "float16", "float": "float32", "double": "float64", "float16": "float16", "float32": "float32",
    "float64": "float64", "bfloat16": "bfloat16", "complex64": "complex64", "complex128": "complex128",
    "int8": "int8", "int16": "int16", "int32": "int32", "int64": "int64", "uint8": "uint8",
    "uint16": "uint16", "uint32": "uint32", "uint64": "uint64", "bool": "bool", "boolean": "bool",
    "string": "string", "str": "string", "object": "string", "category": "string", "bytes": "bytes",
    "qint8": "qint8", "quint8": "quint8", "qint16": "qint16", "quint16": "quint16", "qint32": "qint32",
    "resource": "resource", "variant": "variant", "integer": "int64", "int": "int64",
    "datetime": "datetime", "date": "datetime",
}
FEATURE_TYPE_PROFILES = {
    "continuous": "numerical", "integer": "numerical", "float": "numerical", "number": "numerical",
    "text": "text", "document": "text", "string": "text", "image": "image",
}


def _check(key: str, category: str, description: str, passed: bool, message: str) -> dict:
    return {"key": key, "category": category, "description": description, "passed": bool(passed),
            "message": message}


# --- small parsers ------------------------------------------------------------------------------

def _unsafe_yaml_tags(text: str) -> list[str]:
    """YAML tags that would construct Python objects under yaml.load; found without constructing."""
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError:
        return []
    found, seen, pending = [], set(), [root] if root is not None else []
    while pending:
        node = pending.pop()
        if id(node) in seen:
            continue
        seen.add(id(node))
        if UNSAFE_YAML_TAG.match(node.tag or ""):
            found.append(node.tag.removeprefix("tag:yaml.org,2002:"))
        if isinstance(node, yaml.SequenceNode):
            pending.extend(node.value)
        elif isinstance(node, yaml.MappingNode):
            for key, value in node.value:
                pending.extend((key, value))
    return found


def _load_yaml(data: bytes, filename: str) -> tuple[object, str | None, list[str]]:
    """(value, error, unsafe python tags). Never constructs anything but plain data."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        return None, f"{filename} is not UTF-8", []
    try:
        return yaml.safe_load(text), None, []
    except yaml.YAMLError as error:
        reason = str(error).splitlines()[0] if str(error) else type(error).__name__
        return None, f"{filename} is not safe YAML: {reason}", _unsafe_yaml_tags(text)
    except RecursionError:
        return None, f"{filename} is nested too deeply", []


def _get(mapping, *path):
    for key in path:
        if not isinstance(mapping, dict):
            return None
        mapping = mapping.get(key)
    return mapping


def _text(value, limit: int = 500) -> str | None:
    if value is None or isinstance(value, (dict, list)):
        return None
    return str(value)[:limit]


# --- runtime.yaml ---------------------------------------------------------------------------

def _runtime_checks(data: bytes) -> tuple[list[dict], dict, list[str]]:
    checks, details = [], {}
    runtime, error, unsafe_tags = _load_yaml(data, "runtime.yaml")
    description = "runtime.yaml is safe YAML holding a mapping"
    if error:
        if unsafe_tags:
            error += f" (tags that construct Python objects: {', '.join(sorted(set(unsafe_tags)))})"
        checks.append(_check("runtime_yaml_valid", "runtime", description, False, error))
        return checks, details, unsafe_tags
    if not isinstance(runtime, dict):
        checks.append(_check("runtime_yaml_valid", "runtime", description, False,
                             "runtime.yaml does not hold a mapping"))
        return checks, details, []
    checks.append(_check("runtime_yaml_valid", "runtime", description, True, "parsed"))

    version = runtime.get("MODEL_ARTIFACT_VERSION")
    details["artifact_version"] = _text(version)
    checks.append(_check(
        "runtime_artifact_version", "runtime", "MODEL_ARTIFACT_VERSION is set",
        version not in (None, ""), f"MODEL_ARTIFACT_VERSION is {version!r}" if version not in (None, "")
        else "MODEL_ARTIFACT_VERSION is missing",
    ))

    environment = _get(runtime, "MODEL_DEPLOYMENT", "INFERENCE_CONDA_ENV")
    if not isinstance(environment, dict):
        checks.append(_check("runtime_inference_env", "runtime",
                             "MODEL_DEPLOYMENT.INFERENCE_CONDA_ENV describes the environment to deploy with",
                             False, "MODEL_DEPLOYMENT.INFERENCE_CONDA_ENV is missing"))
        return checks, details, []
    env_type = environment.get("INFERENCE_ENV_TYPE")
    slug = environment.get("INFERENCE_ENV_SLUG")
    path = environment.get("INFERENCE_ENV_PATH")
    python_version = environment.get("INFERENCE_PYTHON_VERSION")
    details.update({
        "inference_env_type": _text(env_type), "inference_env_slug": _text(slug),
        "inference_env_path": _text(path), "inference_python_version": _text(python_version),
    })

    if env_type is not None:
        checks.append(_check(
            "runtime_env_type", "runtime", "INFERENCE_ENV_TYPE, when set, is 'published' or 'data_science'",
            env_type in ENV_TYPES, f"INFERENCE_ENV_TYPE is {env_type!r}",
        ))
    path_ok = isinstance(path, str) and path.strip() != ""
    path_message = f"INFERENCE_ENV_PATH is {path!r}" if path_ok else "INFERENCE_ENV_PATH is missing or empty"
    if path_ok and path.startswith("oci://") and not re.match(r"^oci://[^@/\s]+@[^/\s]+/\S+$", path):
        path_ok, path_message = False, "INFERENCE_ENV_PATH is not of the form oci://bucket@namespace/path"
    checks.append(_check("runtime_env_path", "runtime",
                         "MODEL_DEPLOYMENT.INFERENCE_CONDA_ENV.INFERENCE_ENV_PATH names the conda environment",
                         path_ok, path_message))
    slug_ok = isinstance(slug, str) and slug.strip() != ""
    if env_type == "data_science" or slug is not None:
        # A service-provided environment is known by its slug; a published one by its path.
        checks.append(_check("runtime_env_slug", "runtime",
                             "INFERENCE_ENV_SLUG is set for a service-provided (data_science) environment",
                             slug_ok, f"INFERENCE_ENV_SLUG is {slug!r}" if slug_ok
                             else "INFERENCE_ENV_SLUG is missing or empty"))
    checks.append(_python_version_check(python_version))
    provenance = runtime.get("MODEL_PROVENANCE")
    if isinstance(provenance, dict):
        details["provenance"] = {
            str(key)[:100]: _text(value) for key, value in list(provenance.items())[:50] if _text(value) is not None
        }
    return checks, details, []


def _python_version_check(value) -> dict:
    description = "INFERENCE_PYTHON_VERSION is a Python 3 version"
    if value is None or isinstance(value, (bool, dict, list)):
        return _check("runtime_python_version", "runtime", description, False,
                      "INFERENCE_PYTHON_VERSION is missing")
    text = str(value)
    if not re.fullmatch(r"3\.\d+(\.\d+)?", text):
        return _check("runtime_python_version", "runtime", description, False,
                      f"INFERENCE_PYTHON_VERSION {text!r} is not a Python 3 version such as '3.11'")
    message = f"INFERENCE_PYTHON_VERSION is {text}"
    if isinstance(value, float):
        message += " (read as a number: quote it, or 3.10 becomes 3.1)"
    return _check("runtime_python_version", "runtime", description, True, message)


# --- score.py -------------------------------------------------------------------------------

def _score_checks(data: bytes) -> tuple[list[dict], dict]:
    checks, details = [], {}
    description = "score.py is valid Python (parsed, never run)"
    try:
        tree = ast.parse(data, filename="score.py")
    except SyntaxError as error:
        checks.append(_check("score_py_syntax", "score", description, False,
                             f"syntax error on line {error.lineno}: {error.msg}"))
        return checks, details
    except (ValueError, RecursionError, MemoryError) as error:
        checks.append(_check("score_py_syntax", "score", description, False,
                             f"score.py cannot be parsed: {type(error).__name__}"))
        return checks, details
    checks.append(_check("score_py_syntax", "score", description, True, "parsed"))
    checks.append(_paths_check(tree, details))

    functions, async_functions = {}, set()
    imports = set()
    for node in tree.body:
        if isinstance(node, ast.FunctionDef):
            functions[node.name] = node
            async_functions.discard(node.name)
        elif isinstance(node, ast.AsyncFunctionDef):
            async_functions.add(node.name)
            functions.pop(node.name, None)
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            imports.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            imports.add(node.module.split(".")[0])
    details["functions"] = sorted(functions)[:200]
    details["imports"] = sorted(imports)[:200]

    load_model = functions.get("load_model")
    if load_model is None:
        message = ("load_model is async; the server calls it synchronously" if "load_model" in async_functions
                   else "no top-level function load_model")
        checks.append(_check("score_load_model", "score", "score.py defines load_model(), callable with no "
                             "arguments", False, message))
    else:
        required = _required_arguments(load_model.args)
        checks.append(_check(
            "score_load_model", "score", "score.py defines load_model(), callable with no arguments",
            not required, "defined" if not required else f"load_model requires arguments: {', '.join(required)}",
        ))

    predict = functions.get("predict")
    if predict is None:
        message = ("predict is async; the server calls it synchronously" if "predict" in async_functions
                   else "no top-level function predict")
        checks.append(_check("score_predict", "score", "score.py defines predict()", False, message))
        return checks, details
    checks.append(_check("score_predict", "score", "score.py defines predict()", True, "defined"))
    arguments = predict.args
    positional = [argument.arg for argument in arguments.posonlyargs + arguments.args]
    description = "predict takes the data as its first argument and has defaults for all others"
    if not positional and arguments.vararg is None:
        checks.append(_check("score_predict_arguments", "score", description, False,
                             "predict takes no argument for the data"))
    else:
        required = _required_arguments(arguments)[1:]
        checks.append(_check(
            "score_predict_arguments", "score", description, not required,
            f"data argument: {positional[0] if positional else '*' + arguments.vararg.arg}" if not required
            else f"arguments after the first need defaults: {', '.join(required)}",
        ))
    return checks, details


def _paths_check(tree: ast.Module, details: dict) -> dict:
    description = "score.py opens and loads files only inside the artifact (no absolute path, no '..')"
    try:
        outside = outside_paths(tree)
    except (TooComplex, RecursionError, MemoryError) as error:  # not understood is not passed
        return _check("score_py_paths", "score", description, False,
                      f"the paths score.py opens cannot be followed ({error or type(error).__name__})")
    if not outside:
        return _check("score_py_paths", "score", description, True, "no path outside the artifact")
    details["outside_paths"] = outside
    shown = "; ".join(f"line {item['line']}: {item['code']} uses {item['path']!r}: {item['problem']}"
                      for item in outside[:3])
    more = f" (+{len(outside) - 3} more)" if len(outside) > 3 else ""
    return _check("score_py_paths", "score", description, False, shown + more)


def _required_arguments(arguments: ast.arguments) -> list[str]:
    positional = arguments.posonlyargs + arguments.args
    required = [argument.arg for argument in positional[:len(positional) - len(arguments.defaults)]]
    required += [
        argument.arg for argument, default in zip(arguments.kwonlyargs, arguments.kw_defaults) if default is None
    ]
    return required


# --- signatures: schemas and contracts -------------------------------------------------------

def _dtype(value) -> str | None:
    if not isinstance(value, str):
        return None
    lowered = value.strip().lower()
    if lowered in DTYPE_ALIASES:
        return DTYPE_ALIASES[lowered]
    if lowered.startswith("datetime64"):
        return "datetime"
    return None


def _shape(value) -> list[int] | None:
    if value is None:
        return [-1]
    if value == "scalar":
        return []
    if isinstance(value, list) and all(isinstance(dim, int) and not isinstance(dim, bool) and dim >= -1
                                       for dim in value):
        return value
    return None


def _schema_fields(document, filename: str) -> tuple[list[dict] | None, str]:
    """Signature fields from an ADS-style schema {"schema": [{name, dtype, feature_type, ...}]}."""
    if not isinstance(document, dict) or not isinstance(document.get("schema"), list):
        return None, f'{filename} is not an object with a "schema" list'
    items = document["schema"]
    if len(items) > MAX_SCHEMA_FIELDS:
        return None, f"{filename} describes more than {MAX_SCHEMA_FIELDS} fields"
    fields = []
    for index, item in enumerate(items):
        if not isinstance(item, dict) or "name" not in item or not isinstance(item.get("dtype"), str):
            return None, f"{filename}: field {index} needs a name and a dtype"
        name = item["name"]
        if not isinstance(name, (str, int)) or isinstance(name, bool):
            return None, f"{filename}: field {index} has a name that is not a string"
        dtype = _dtype(item["dtype"]) or item["dtype"].strip().lower()[:64]
        shape = _shape(item.get("shape"))
        if shape is None:
            return None, f"{filename}: field {name!r} has an invalid shape"
        field = {"name": str(name), "dtype": dtype, "shape": shape}
        profile = FEATURE_TYPE_PROFILES.get(str(item.get("feature_type", "")).lower())
        if profile:
            field["profile"] = profile
        fields.append(field)
    return fields, f"{len(fields)} fields"


def _contract_field(name, spec) -> tuple[dict | None, str | None]:
    if not isinstance(spec, dict):
        return None, f"field {name!r} is not a mapping"
    raw_type = spec.get("dtype", spec.get("type"))
    dtype = _dtype(raw_type)
    if dtype is None:
        return None, f"field {name!r} has an unknown type {raw_type!r}"
    shape = _shape(spec.get("shape"))
    if shape is None:
        return None, f"field {name!r} has an invalid shape (a list of integers >= -1, or 'scalar')"
    field = {"name": str(name), "dtype": dtype, "shape": shape}
    profile = spec.get("profile")
    if profile is not None:
        if str(profile).lower() not in PROFILES:
            return None, f"field {name!r} has an unknown profile {profile!r}"
        field["profile"] = str(profile).lower()
    return field, None


def _contract_side(value, side: str) -> tuple[list[dict] | None, str | None]:
    if value is None:
        return [], None
    if isinstance(value, dict):
        entries = list(value.items())
    elif isinstance(value, list):
        entries = [(item.get("name") if isinstance(item, dict) else None, item) for item in value]
    else:
        return None, f"{side} must be a list or a mapping"
    fields = []
    for name, spec in entries[:MAX_SCHEMA_FIELDS]:
        if name in (None, ""):
            return None, f"a field of {side} has no name"
        field, error = _contract_field(name, spec)
        if error:
            return None, f"{side}: {error}"
        fields.append(field)
    return fields, None


def parse_contract(document) -> tuple[dict | None, dict, str]:
    """(signature, details, message) from a contract document; signature None when invalid.

    Accepted shapes: {"signature": {"inputs", "outputs"}}, top-level {"inputs", "outputs"}, and
    Hydrosphere's {"contract": {<signature name>: {"inputs": {field: {shape, type, profile}}, ...}}}:
    every named signature is kept, in the canonical form of registry/signatures.py (one
    signature named "predict" is the plain {"inputs", "outputs"}).
    """
    details = {}
    if not isinstance(document, dict):
        return None, details, "the contract is not a mapping"
    if document.get("model-type") is not None:
        details["model_type"] = _text(document.get("model-type"), 100)
    if document.get("name") is not None:
        details["name"] = _text(document.get("name"), 200)
    if isinstance(document.get("signature"), dict):
        candidates = {signatures.DEFAULT_NAME: document["signature"]}
    elif "inputs" in document or "outputs" in document:
        candidates = {signatures.DEFAULT_NAME: document}
    elif isinstance(document.get("contract"), dict) and document["contract"]:
        candidates = document["contract"]
        details["signatures"] = [str(name) for name in candidates][:100]
        if len(candidates) > signatures.MAX_SIGNATURES:
            return None, details, f"more than {signatures.MAX_SIGNATURES} signatures"
    else:
        return None, details, "no signature found (expected signature, inputs/outputs or contract)"
    found: dict[str, dict] = {}
    for name, chosen in candidates.items():
        if not isinstance(name, str) or not signatures.NAME.match(name):
            return None, details, f"signature name {_text(name, 80)!r} is not valid (letters, digits, '_', '.', '-')"
        label = "" if list(candidates) == [signatures.DEFAULT_NAME] else f"signature {name!r}: "
        if not isinstance(chosen, dict):
            return None, details, f"signature {name!r} is not a mapping"
        inputs, error = _contract_side(chosen.get("inputs"), "inputs")
        if error:
            return None, details, label + error
        outputs, error = _contract_side(chosen.get("outputs"), "outputs")
        if error:
            return None, details, label + error
        if not inputs and not outputs:
            return None, details, f"{label}the signature has no inputs and no outputs"
        found[name] = {"inputs": inputs, "outputs": outputs}
    return signatures.canonical(found), details, signatures.describe(found)


# --- serialized members ---------------------------------------------------------------------

def _extension_kind(name: str) -> str | None:
    lowered = name.lower()
    for extension, kind in EXTENSION_KINDS.items():
        if lowered.endswith(extension):
            return kind
    return None


def _sniff(head: bytes) -> str | None:
    if head.startswith(b"\x93NUMPY"):
        return "npy"
    return headers.detect_kind(io.BytesIO(head))


def _npy_object_payload_offset(spooled) -> int | None:
    """Where the pickled payload of an object-dtype .npy starts, or None for plain arrays."""
    head = spooled.read(10)
    if not head.startswith(b"\x93NUMPY") or len(head) < 10:
        raise ValueError("not an .npy file")
    major = head[6]
    if major == 1:
        length, start = int.from_bytes(head[8:10], "little"), 10
    else:
        spooled.seek(8)
        length, start = int.from_bytes(spooled.read(4), "little"), 12
    if length > 1024 * 1024:
        raise ValueError(".npy header too large")
    spooled.seek(start)
    header = ast.literal_eval(spooled.read(length).decode("latin-1"))  # a dict literal; evaluates nothing
    if not isinstance(header, dict):
        raise ValueError(".npy header is not a dict")
    return start + length if "O" in str(header.get("descr", "")) else None


def _builtin_inspector(kind: str):
    # Imported here so that importing artifact does not pull in onnx for every caller.
    if kind == "onnx":
        from registry.introspection.onnx_model import inspect_onnx
        return inspect_onnx
    if kind == "pmml":
        from registry.introspection.pmml import inspect_pmml
        return inspect_pmml
    if kind == "safetensors":
        from registry.introspection.safetensors_file import inspect_safetensors
        return inspect_safetensors
    if kind == "h5":
        return headers.inspect_h5
    if kind == "rda":
        return headers.inspect_rda
    return None


def _call_scanner(scan_serialized, kind: str, fileobj) -> tuple[str, str, dict]:
    if scan_serialized is None:
        return FAILED, f"no {kind} scanner available: cannot be checked, so never reported clean", {}
    try:
        result = scan_serialized(kind, fileobj)
    except Exception as error:  # a scanner crash is a failed scan, never a clean one
        return FAILED, f"the {kind} scanner failed: {type(error).__name__}: {error}"[:500], {}
    if isinstance(result, Report) and result.status in SEVERITY:
        return result.status, result.message, result.details
    if isinstance(result, dict) and result.get("status") in SEVERITY:
        return result["status"], str(result.get("message", "")), result.get("details") or {}
    return FAILED, f"the {kind} scanner returned no report", {}


def _member_kind(name: str, head: bytes) -> tuple[str | None, str | None]:
    """(the kind a member is checked as, the kind its content shows); None when it is no model."""
    extension_kind = _extension_kind(name)
    content_kind = _sniff(head)
    if content_kind in PICKLE_KINDS:
        kind = extension_kind if extension_kind in PICKLE_KINDS else content_kind
    elif content_kind in ("zip", "savedmodel", "artifact") or (content_kind is None and extension_kind == "zip"
                                                               and head[:2] == b"PK"):
        kind = "pt" if extension_kind == "pt" else "zip"
    elif content_kind == "npy":
        kind = "npy"
    else:
        kind = extension_kind if extension_kind not in ("zip", "npy") else None
    return kind, content_kind


def _scan_member(archive: SafeZip, info, name: str, scan_serialized) -> list[dict]:
    kind, content_kind = _member_kind(name, archive.read_head(info, SNIFF_BYTES))
    if kind == "zip":
        with archive.open_nested(info) as nested:
            return _scan_archive(nested, scan_serialized, prefix=f"{name}/")
    if kind is None:
        # Not a model by name or content: still a Keras configuration with code (config.json of a
        # .keras zip, keras_metadata.pb)...
        code_layer = None
        if name.lower().endswith((".json", ".pb", ".pbtxt")):
            with archive.spool(info) as spooled:
                code_layer = headers.keras_code_layer(spooled)
        if code_layer:
            return [{"member": name, "kind": "keras", "status": QUARANTINED,
                     "message": f"a Keras {code_layer} layer: its Python code runs when the model is loaded"}]
        # ...and still a pickle if pickle.load accepts it (README, weights.bin).
        with archive.open_member(info) as member:
            as_pickle = scan_as_loaded(member, size=info.file_size)
        if as_pickle is None:
            return []
        accepted = as_pickle.details.get("as_loaded", {}).get("accepted_by")
        return [{"member": name, "kind": "pkl" if accepted else "data", "status": as_pickle.status,
                 "message": as_pickle.message, "details": as_pickle.details}]
    with archive.spool(info) as spooled:
        if kind in PICKLE_KINDS:
            # The pickle scanner reads the member from byte 0 as pickle.load does, and more.
            status, message, details = _call_scanner(scan_serialized, kind, spooled)
            return [{"member": name, "kind": kind, "status": status, "message": message, "details": details}]
        status, message, details = _inspect_member(kind, content_kind, spooled, scan_serialized)
        spooled.seek(0)
        as_pickle = scan_as_loaded(spooled)
    result = {"member": name, "kind": kind, "status": status, "message": message, "details": details}
    if as_pickle is not None:
        combined = combine(Report(status, message, details=details), as_pickle, key="read_as_pickle")
        result.update(status=combined.status, message=combined.message, details=combined.details)
    return [result]


def _inspect_member(kind: str, content_kind: str | None, spooled, scan_serialized) -> tuple[str, str, dict]:
    """(status, message, details) of a member that is no pickle-family file, by its kind's inspector."""
    if kind == "npy":
        try:
            offset = _npy_object_payload_offset(spooled)
        except (ValueError, SyntaxError, MemoryError, RecursionError) as error:
            return FAILED, f"unreadable .npy: {error}", {}
        if offset is None:
            return READY, "numeric array", {}
        with tempfile.TemporaryFile(prefix="registry-npy-") as payload:
            spooled.seek(offset)
            while chunk := spooled.read(1024 * 1024):
                payload.write(chunk)
            payload.seek(0)
            status, message, details = _call_scanner(scan_serialized, "pkl", payload)
        return status, f"object array (pickled): {message}", details
    try:
        report = _builtin_inspector(kind)(spooled)
    except Exception as error:  # an inspector crash is a failed check, never a pass
        return FAILED, f"could not be read: {type(error).__name__}", {}
    if content_kind and content_kind != kind and report.status == READY:
        return FAILED, f"named like {kind} but the content is {headers.KIND_LABELS[content_kind]}", {}
    return report.status, report.message, {}


def _scan_archive(archive: SafeZip, scan_serialized, prefix: str = "") -> list[dict]:
    results = []
    for info in archive.files():
        results.extend(_scan_member(archive, info, prefix + normalized_name(info.filename), scan_serialized))
    return results


def _serialized_checks(results: list[dict]) -> list[dict]:
    return [
        _check(f"serialized_model:{result['member']}", "serialized",
               f"{result['member']} ({result['kind']}) passes the check for its kind",
               result["status"] == READY, f"{result['status']}: {result['message']}")
        for result in results
    ]


# --- reports --------------------------------------------------------------------------------

def _archive_failure(error: ArchiveError, detected_kind: str | None) -> Report:
    check = _check("archive_safety", "archive", "the zip can be read safely within the limits", False, error.reason)
    return Report(error.status, error.reason, detected_kind=detected_kind,
                  details={"archive_error": error.code, "member": error.member}, checks=[check])


def _finish(checks: list[dict], details: dict, *, label: str, detected_kind: str | None,
            signature: dict | None, quarantine_reasons: list[str], results: list[dict]) -> Report:
    """The archive's status from its checks and its members' results (the worst wins)."""
    details["serialized_models"] = results[:MAX_LISTED]
    checks = checks + _serialized_checks(results)
    quarantine_reasons = quarantine_reasons + [f"{result['member']}: {result['message']}" for result in results
                                               if result["status"] == QUARANTINED]
    review = [result for result in results if result["status"] == REVIEW]
    # A member waiting for a person's review fails no check of the archive's own.
    pending = {f"serialized_model:{result['member']}" for result in review}
    failed = [check for check in checks if not check["passed"] and check["key"] not in pending]
    if quarantine_reasons:
        status = QUARANTINED
        message = f"dangerous content: {quarantine_reasons[0]}"
        if len(quarantine_reasons) > 1:
            message += f" (and {len(quarantine_reasons) - 1} more)"
    elif failed:
        status = FAILED
        keys = ", ".join(check["key"] for check in failed[:5]) + (", ..." if len(failed) > 5 else "")
        message = f"{label} fails {len(failed)} of {len(checks)} checks ({keys}): {failed[0]['message']}"
    elif review:
        status = REVIEW
        details["unvetted"] = merge_unvetted(result.get("details", {}).get("unvetted") for result in review)
        names = [item["import"] for item in details["unvetted"]]
        members = [result["member"] for result in review]
        shown = ", ".join(names[:5]) + (f" (+{len(names) - 5} more)" if len(names) > 5 else "")
        message = (f"{label} needs review: {len(names)} import{'s' if len(names) != 1 else ''} not on the "
                   f"allow-list ({shown}) in {', '.join(members[:3])}" + (" and more" if len(members) > 3 else "")
                   + f"; it passes its other {len(checks) - len(pending)} checks")
    else:
        status = READY
        message = f"{label} passes all {len(checks)} checks"
    return Report(status, message, detected_kind=detected_kind, details=details, signature=signature,
                  checks=checks)


def _root_prefix(names: list[str], markers: tuple[str, ...]) -> str:
    """"" when the marker files are at the top level, "folder/" when everything is in one folder."""
    if any(name in markers for name in names):
        return ""
    top_levels = {name.split("/", 1)[0] for name in names}
    if len(top_levels) == 1 and all("/" in name for name in names):
        return f"{top_levels.pop()}/"
    return ""


def _archive_details(archive: SafeZip) -> dict:
    files = archive.files()
    return {
        "member_count": len(files),
        "total_uncompressed": sum(info.file_size for info in files),
        "members": archive.listing(MAX_LISTED),
        "members_truncated": len(files) > MAX_LISTED,
    }


def _open(fileobj, limits: ArchiveLimits) -> SafeZip:
    fileobj.seek(0)
    return SafeZip(fileobj, limits=limits)


def inspect_artifact(fileobj, *, scan_serialized=None, limits: ArchiveLimits = DEFAULT_LIMITS) -> Report:
    """Check a zip model artifact; see the module docstring for checks and statuses."""
    detected = headers.detect_kind(fileobj)
    try:
        with _open(fileobj, limits) as archive:
            return _inspect_artifact(archive, scan_serialized, detected)
    except ArchiveError as error:
        return _archive_failure(error, detected)


def _inspect_artifact(archive: SafeZip, scan_serialized, detected) -> Report:
    names = archive.names()
    prefix = _root_prefix(names, ("runtime.yaml", "score.py"))
    details = {**_archive_details(archive), "root": prefix or "/"}
    checks, quarantine = [], []

    runtime_info = archive.get(prefix + "runtime.yaml")
    checks.append(_check("runtime_yaml_present", "files", "runtime.yaml is at the top level of the artifact",
                         runtime_info is not None, "present" if runtime_info else "runtime.yaml is missing"))
    if runtime_info is not None:
        if runtime_info.file_size > MAX_RUNTIME_YAML_BYTES:
            checks.append(_check("runtime_yaml_valid", "runtime", "runtime.yaml is safe YAML holding a mapping",
                                 False, f"runtime.yaml is larger than {MAX_RUNTIME_YAML_BYTES} bytes"))
        else:
            runtime_checks, details["runtime"], unsafe_tags = _runtime_checks(
                archive.read_small(runtime_info, MAX_RUNTIME_YAML_BYTES))
            checks += runtime_checks
            if unsafe_tags:
                quarantine.append(f"runtime.yaml uses YAML tags that construct Python objects ({unsafe_tags[0]})")

    score_info = archive.get(prefix + "score.py")
    checks.append(_check("score_py_present", "files", "score.py is at the top level of the artifact",
                         score_info is not None, "present" if score_info else "score.py is missing"))
    if score_info is not None:
        if score_info.file_size > MAX_SCORE_PY_BYTES:
            checks.append(_check("score_py_syntax", "score", "score.py is valid Python (parsed, never run)", False,
                                 f"score.py is larger than {MAX_SCORE_PY_BYTES} bytes"))
        else:
            score_checks, details["score"] = _score_checks(archive.read_small(score_info, MAX_SCORE_PY_BYTES))
            checks += score_checks

    schema_fields = {}
    for side in ("input", "output"):
        filename = f"{side}_schema.json"
        info = archive.get(prefix + filename)
        description = f"{filename}, when present, is a JSON schema of named, typed fields"
        if info is None:
            checks.append(_check(f"{side}_schema", "schema", description, True, "not present (optional)"))
            continue
        if info.file_size > MAX_SCHEMA_BYTES:
            checks.append(_check(f"{side}_schema", "schema", description, False,
                                 f"{filename} is larger than {MAX_SCHEMA_BYTES} bytes"))
            continue
        try:
            document = json.loads(archive.read_small(info, MAX_SCHEMA_BYTES).decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as error:
            checks.append(_check(f"{side}_schema", "schema", description, False,
                                 f"{filename} is not valid JSON: {str(error)[:200]}"))
            continue
        fields, message = _schema_fields(document, filename)
        checks.append(_check(f"{side}_schema", "schema", description, fields is not None, message))
        if fields is not None:
            schema_fields[side] = fields

    signature, signature_file = None, None
    contract_names = [prefix + name for name in CONTRACT_FILES if archive.get(prefix + name)]
    if contract_names:
        contract_name = contract_names[0]
        short_name = contract_name[len(prefix):]
        description = "the contract file declares a signature of typed inputs and outputs"
        info = archive.get(contract_name)
        if info.file_size > MAX_CONTRACT_BYTES:
            checks.append(_check("contract", "contract", description, False,
                                 f"{short_name} is larger than {MAX_CONTRACT_BYTES} bytes"))
        else:
            document, error, unsafe_tags = _load_yaml(archive.read_small(info, MAX_CONTRACT_BYTES), short_name)
            if unsafe_tags:
                quarantine.append(f"{short_name} uses YAML tags that construct Python objects ({unsafe_tags[0]})")
            if error:
                checks.append(_check("contract", "contract", description, False, error))
            else:
                contract_signature, contract_details, message = parse_contract(document)
                details["contract"] = {"file": short_name, **contract_details}
                if len(contract_names) > 1:
                    details["contract"]["ignored"] = [name[len(prefix):] for name in contract_names[1:]]
                checks.append(_check("contract", "contract", description, contract_signature is not None,
                                     f"{short_name}: {message}"))
                if contract_signature is not None:
                    signature, signature_file = contract_signature, short_name
    if signature is None and schema_fields:
        signature = {"inputs": schema_fields.get("input", []), "outputs": schema_fields.get("output", [])}
        signature_file = "input_schema.json/output_schema.json"
    if signature is not None:
        # "contract" outranks a signature inferred from files; the registry stores this word.
        details["signature_source"] = "contract" if signature_file in CONTRACT_FILES else "introspection"
        details["signature_file"] = signature_file

    return _finish(checks, details, label="artifact", detected_kind=detected, signature=signature,
                   quarantine_reasons=quarantine, results=_scan_archive(archive, scan_serialized))


def inspect_zip(fileobj, *, scan_serialized=None, limits: ArchiveLimits = DEFAULT_LIMITS) -> Report:
    """A zip of no particular layout: archive safety, and every serialized model inside checked."""
    detected = headers.detect_kind(fileobj)
    try:
        with _open(fileobj, limits) as archive:
            details = _archive_details(archive)
            results = _scan_archive(archive, scan_serialized)
    except ArchiveError as error:
        return _archive_failure(error, detected)
    checks = [_check("archive_safety", "archive", "the zip can be read safely within the limits", True, "safe")]
    return _finish(checks, details, label="zip", detected_kind=detected, signature=None, quarantine_reasons=[],
                   results=results)


def inspect_savedmodel(fileobj, *, scan_serialized=None, limits: ArchiveLimits = DEFAULT_LIMITS) -> Report:
    """A zip of a TensorFlow SavedModel: saved_model.pb(txt), variables, assets, signatures."""
    detected = headers.detect_kind(fileobj)
    try:
        with _open(fileobj, limits) as archive:
            return _inspect_savedmodel(archive, scan_serialized, detected)
    except ArchiveError as error:
        return _archive_failure(error, detected)


def _version_order(location: str):
    parts = location.split("/")
    return (len(parts), [(0, int(part)) if part.isdigit() else (1, part) for part in parts])


def _inspect_savedmodel(archive: SafeZip, scan_serialized, detected) -> Report:
    names = archive.names()
    details = _archive_details(archive)
    checks, signature = [], None
    locations = [name for name in names if re.search(r"(^|/)saved_model\.pb(txt)?$", name)]
    details["saved_model_locations"] = locations[:100]
    checks.append(_check("saved_model_present", "files", "the zip holds saved_model.pb or saved_model.pbtxt",
                         bool(locations), "present" if locations else "no saved_model.pb or saved_model.pbtxt"))
    if locations:
        shallowest = min(location.count("/") for location in locations)
        # TF Serving keeps numbered versions side by side (model/1/, model/2/): use the newest.
        graph_file = max((location for location in locations if location.count("/") == shallowest),
                         key=_version_order)
        root = graph_file.rsplit("/", 1)[0] + "/" if "/" in graph_file else ""
        details["root"] = root or "/"
        details["graph_file"] = graph_file
        variables = [name for name in names if name.startswith(root + "variables/")]
        assets = [name for name in names if name.startswith((root + "assets/", root + "assets.extra/"))]
        details["variables"] = [{"name": name, "size": archive.get(name).file_size} for name in variables[:MAX_LISTED]]
        details["assets"] = assets[:MAX_LISTED]
        details["asset_count"] = len(assets)
        details["keras_metadata"] = root + "keras_metadata.pb" in names
        details["fingerprint"] = root + "fingerprint.pb" in names
        data_shards = [name for name in variables if re.search(r"/variables\.data-\d+-of-\d+$", name)]
        has_index = root + "variables/variables.index" in names
        checks.append(_check(
            "saved_model_variables", "files", "variables, when present, have their variables.index",
            has_index or not data_shards,
            f"{len(data_shards)} data shards" + (" and an index" if has_index else " without variables.index")
            if variables else "no variables (a model without weights, or weights in the graph)",
        ))
        if graph_file.endswith(".pb"):
            signature = _savedmodel_signature_check(archive, archive.get(graph_file), checks, details)
        else:
            details["signature_note"] = "signatures are not read from saved_model.pbtxt"
    return _finish(checks, details, label="SavedModel", detected_kind=detected, signature=signature,
                   quarantine_reasons=[], results=_scan_archive(archive, scan_serialized))


def _savedmodel_signature_check(archive: SafeZip, info, checks: list[dict], details: dict) -> dict | None:
    description = "saved_model.pb is a SavedModel protobuf"
    with archive.spool(info) as spooled:
        try:
            saved_model = savedmodel_proto.read_saved_model(spooled)
        except protowire.ProtoError as error:
            checks.append(_check("saved_model_readable", "files", description, False,
                                 f"saved_model.pb is not a valid SavedModel: {error}"))
            return None
    meta_graphs = saved_model["meta_graphs"]
    details["meta_graphs"] = [
        {"tags": graph["tags"], "tensorflow_version": graph["tensorflow_version"],
         "signatures": sorted(graph["signatures"])[:100]}
        for graph in meta_graphs[:20]
    ]
    name, signature = savedmodel_proto.serving_signature(saved_model)
    details["signature_name"] = name
    checks.append(_check("saved_model_readable", "files", description, True,
                         f"{len(meta_graphs)} meta graphs" + (f", signature {name!r}" if name else ", no signatures")))
    return signature
