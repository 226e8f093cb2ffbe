import io
import json
import os
import pickle
import tempfile
import zipfile
from contextlib import contextmanager

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from registry.introspection import artifact, score_paths
from registry.introspection.archives import ArchiveLimits
from registry.introspection.artifact import inspect_artifact, inspect_savedmodel, inspect_zip, parse_contract
from registry.introspection.protowire import VARINT, Field, encode_len_field, encode_scalar_field
from registry.introspection.report import FAILED, QUARANTINED, READY, REVIEW, Report
from tests.registry.introspection.sandbox import (  # noqa: F401 (fixture)
    BENIGN_PICKLE,
    MALICIOUS_PICKLE,
    RUNTIME_YAML,
    SCORE_PY,
    RecordingScanner,
    artifact_members,
    nested_zip,
    sandbox,
    symlink_info,
    zip_bytes,
    zip_with_info,
)


def run(members_or_bytes, scanner=None, **kwargs):
    data = members_or_bytes if isinstance(members_or_bytes, bytes) else zip_bytes(members_or_bytes)
    scanner = RecordingScanner() if scanner is None else scanner
    return inspect_artifact(io.BytesIO(data), scan_serialized=scanner, **kwargs)


def checks_by_key(report):
    return {check["key"]: check for check in report.checks}


def failed_keys(report):
    return sorted(check["key"] for check in report.checks if not check["passed"])


def test_a_complete_artifact_passes_every_check(sandbox):
    scanner = RecordingScanner()
    report = run(artifact_members(), scanner)
    assert report.status == READY, report.message
    assert report.detected_kind == "artifact"
    assert failed_keys(report) == []
    assert set(checks_by_key(report)) == {
        "runtime_yaml_present", "runtime_yaml_valid", "runtime_artifact_version", "runtime_env_type",
        "runtime_env_path", "runtime_env_slug", "runtime_python_version", "score_py_present", "score_py_syntax",
        "score_py_paths", "score_load_model", "score_predict", "score_predict_arguments", "input_schema", "output_schema",
        "serialized_model:model.pkl",
    }
    for check in report.checks:
        assert set(check) == {"key", "category", "description", "passed", "message"}
    assert scanner.calls == [("pkl", BENIGN_PICKLE)]
    assert report.signature == {
        "inputs": [
            {"name": "age", "dtype": "int64", "shape": [-1], "profile": "numerical"},
            {"name": "income", "dtype": "float64", "shape": [-1], "profile": "numerical"},
            {"name": "city", "dtype": "string", "shape": [-1]},
        ],
        "outputs": [{"name": "churn", "dtype": "bool", "shape": [-1]}],
    }
    details = report.details
    assert details["signature_source"] == "introspection"
    assert details["signature_file"] == "input_schema.json/output_schema.json"
    assert details["runtime"]["inference_env_slug"] == "generalml_p311_cpu_v1"
    assert details["runtime"]["inference_python_version"] == "3.11"
    assert details["runtime"]["provenance"] == {"GIT_BRANCH": "main"}
    assert details["score"]["functions"] == ["load_model", "predict"]
    assert details["score"]["imports"] == ["os", "pickle"]
    assert details["member_count"] == 5
    assert "passes all 16 checks" in report.message
    json.dumps(report.as_dict())


def test_an_artifact_zipped_as_a_folder_is_read_from_that_folder(sandbox):
    members = {f"my_model/{name}": data for name, data in artifact_members().items()}
    report = run(members)
    assert report.status == READY, report.message
    assert report.details["root"] == "my_model/"


def test_score_py_without_predict_fails(sandbox):
    report = run(artifact_members(score__py=b"def load_model():\n    return 1\n"))
    assert report.status == FAILED
    assert failed_keys(report) == ["score_predict"]
    assert checks_by_key(report)["score_predict"]["message"] == "no top-level function predict"
    assert "score_predict" in report.message


def test_predict_nested_in_a_class_or_async_does_not_count(sandbox):
    report = run(artifact_members(score__py=b"class Model:\n    def predict(self, data):\n        pass\n"
                                  b"def load_model():\n    pass\n"))
    assert failed_keys(report) == ["score_predict"]
    report = run(artifact_members(score__py=b"async def predict(data):\n    pass\ndef load_model():\n    pass\n"))
    assert "async" in checks_by_key(report)["score_predict"]["message"]


def test_score_py_with_a_syntax_error_fails_and_is_never_run(sandbox):
    sentinel = os.path.join(str(sandbox.root), f"ran-{sandbox.token}")
    sandbox.sentinels.append(sentinel)
    source = f"open({sentinel!r}, 'w').write('ran')\ndef predict(data:\n    pass\n".encode()
    report = run(artifact_members(score__py=source))
    assert report.status == FAILED
    assert failed_keys(report) == ["score_py_syntax"]
    assert "line 2" in checks_by_key(report)["score_py_syntax"]["message"]
    assert "score_load_model" not in checks_by_key(report)


def test_valid_score_py_is_parsed_not_imported(sandbox):
    sentinel = os.path.join(str(sandbox.root), f"imported-{sandbox.token}")
    sandbox.sentinels.append(sentinel)
    source = SCORE_PY + f"\nopen({sentinel!r}, 'w').write('imported')\n".encode()
    report = run(artifact_members(score__py=source))
    assert failed_keys(report) == ["score_py_paths"]  # it would write outside the artifact, had it run


@pytest.mark.parametrize("source, key, fragment", [
    (b"def load_model(): pass\ndef predict(): pass\n", "score_predict_arguments", "no argument"),
    (b"def load_model(): pass\ndef predict(data, model): pass\n", "score_predict_arguments", "model"),
    (b"def load_model(): pass\ndef predict(data, *, model): pass\n", "score_predict_arguments", "model"),
    (b"def load_model(path): pass\ndef predict(data): pass\n", "score_load_model", "path"),
    (b"\x00\x01 binary", "score_py_syntax", ""),
    (b"x = (" * 300 + b")" * 300, "score_py_syntax", ""),
])
def test_score_py_shape_problems(sandbox, source, key, fragment):
    report = run(artifact_members(score__py=source))
    assert report.status == FAILED
    assert key in failed_keys(report)
    assert fragment in checks_by_key(report)[key]["message"]


def score_py(body: str) -> bytes:
    """A valid score.py whose load_model runs `body` (a few lines, indented as its body)."""
    lines = "\n".join(f"    {line}" for line in body.strip().splitlines())
    return (b"import io, os, sys, json, pickle\nimport numpy as np\nimport pandas as pd\nimport joblib\n"
            b"import onnxruntime as ort\nimport torch\nimport yaml\nfrom pathlib import Path\n"
            b"from os.path import dirname, join as pjoin\n\n"
            + f"def load_model(path=None, base=None, name='model.pkl'):\n{lines}\n\n".encode()
            + b"def predict(data, model=None):\n    return data\n")


@pytest.mark.parametrize("body, path", [
    ('return open("/etc/passwd").read()', "/etc/passwd"),
    ('return open("../secrets", "rb")', "../secrets"),
    ('return joblib.load(os.path.join(base, "..", "x.pkl"))', "…/../x.pkl"),
    ('return np.load("/data/weights.npy")', "/data/weights.npy"),
    ('return joblib.load(os.path.join(os.path.dirname(os.path.dirname(__file__)), "m.pkl"))', "<artifact>/../m.pkl"),
    ('return torch.load(Path(__file__).parent.parent / "model.pt")', "<artifact>/../model.pt"),
    ('return Path(__file__).resolve().parents[1].joinpath("m.onnx").read_bytes()', "<artifact>/../m.onnx"),
    ('return open(f"/opt/models/{name}")', "/opt/models/model.pkl"),
    ('folder = "/opt/"\nreturn pickle.load(open(folder + name, "rb"))', "/opt/model.pkl"),
    ('return pd.read_csv("C:\\\\data\\\\x.csv")', "C:\\data\\x.csv"),
    ('return torch.load("~/.cache/model.pt")', "~/.cache/model.pt"),
    ('return pickle.load(open("../../model.pkl", "rb"))', "../../model.pkl"),
    ('sys.path.insert(0, "/opt/libs")', "/opt/libs"),
    ('return (Path("/etc") / "shadow").read_text()', "/etc/shadow"),
    ('booster = None\nbooster.load_model("/models/xgb.json")', "/models/xgb.json"),
    ('return json.load(open("{}/../config.json".format(base)))', "…/../config.json"),
    ('return yaml.safe_load(open("/etc/app.yaml"))', "/etc/app.yaml"),
    ('return ort.InferenceSession("/models/m.onnx")', "/models/m.onnx"),
    ('return os.open("/dev/mem", os.O_RDONLY)', "/dev/mem"),
    ('return io.open("/etc/hosts")', "/etc/hosts"),
    ('return np.load(pjoin(dirname(dirname(__file__)), "w.npy"))', "<artifact>/../w.npy"),
    ('return open(path or "/srv/default.pkl")', "/srv/default.pkl"),
    ('return open("%s/../x" % base)', "…/../x"),
])
def test_score_py_opening_a_path_outside_the_artifact_fails(sandbox, body, path):
    report = run(artifact_members(score__py=score_py(body)))
    assert report.status == FAILED
    assert failed_keys(report) == ["score_py_paths"], report.message
    check = checks_by_key(report)["score_py_paths"]
    assert check["category"] == "score"
    assert repr(path) in check["message"]
    assert report.details["score"]["outside_paths"][0]["path"] == path


def test_a_default_argument_outside_the_artifact_fails(sandbox):
    source = (b"import joblib\nMODEL = '/opt/model.pkl'\n"
              b"def load_model(model_file=MODEL):\n    return joblib.load(model_file)\n"
              b"def predict(data, model=load_model()):\n    return model.predict(data)\n")
    report = run(artifact_members(score__py=source))
    assert failed_keys(report) == ["score_py_paths"]
    assert report.details["score"]["outside_paths"][0]["line"] == 4


@pytest.mark.parametrize("body", [
    'return open("model.pkl", "rb")',
    'return open("./data/vocab.txt")',
    'return joblib.load(os.path.join(os.path.dirname(__file__), "model.pkl"))',
    'return joblib.load(os.path.join(os.path.dirname(os.path.realpath(__file__)), name))',
    'return torch.load(Path(__file__).parent / "model.pt")',
    'return ort.InferenceSession(str(Path(__file__).resolve().parent.joinpath("m.onnx")))',
    'return np.load(pjoin(dirname(__file__), "assets", "w.npy"))',
    'return open(path)',
    'return open(os.environ["MODEL_PATH"])',
    'model_dir = os.path.dirname(os.path.abspath(__file__))\nsys.path.insert(0, model_dir)\n'
    'return os.listdir(model_dir)',
    'url = "https://example.com/models/../m"\nprint("/etc/passwd", url)\nreturn "/a/b".split("/")',
    'return "..".join(["a", "b"]).replace("/", "_")',
    'return len(os.sep) / 2',
    'return json.loads("{\\"path\\": \\"/etc\\"}")',
])
def test_score_py_opening_files_inside_the_artifact_passes(sandbox, body):
    report = run(artifact_members(score__py=score_py(body)))
    assert report.status == READY, report.message
    assert checks_by_key(report)["score_py_paths"]["passed"] is True


def test_the_paths_check_survives_a_score_py_that_refers_to_itself(sandbox):
    source = score_py('a = b\nb = a + "/x"\na += b\nreturn open(a)')
    assert run(artifact_members(score__py=source)).status == READY


def test_predict_with_varargs_or_defaults_is_fine(sandbox):
    for source in (b"def load_model(): pass\ndef predict(*args): pass\n",
                   b"def load_model(x=1): pass\ndef predict(data, model=None, *, extra=2, **kw): pass\n",
                   b"def load_model(): pass\ndef predict(data, /, model=None): pass\n"):
        assert run(artifact_members(score__py=source)).status == READY


def test_missing_files_fail(sandbox):
    report = run(artifact_members(runtime__yaml=None, score__py=None))
    assert report.status == FAILED
    assert failed_keys(report) == ["runtime_yaml_present", "score_py_present"]
    assert "runtime_yaml_valid" not in checks_by_key(report)


def test_runtime_yaml_with_a_python_object_tag_is_quarantined_and_nothing_runs(sandbox):
    sentinel = os.path.join(str(sandbox.root), f"yaml-{sandbox.token}")
    sandbox.sentinels.append(sentinel)
    runtime = RUNTIME_YAML + f"EXTRA: !!python/object/apply:os.system ['touch {sentinel}']\n".encode()
    report = run(artifact_members(runtime__yaml=runtime))
    assert report.status == QUARANTINED
    check = checks_by_key(report)["runtime_yaml_valid"]
    assert check["passed"] is False
    assert "python/object/apply:os.system" in check["message"]
    assert "runtime.yaml" in report.message


def test_runtime_yaml_with_other_unsafe_tags_fails(sandbox):
    report = run(artifact_members(runtime__yaml=b"A: !!python/tuple [1, 2]\n"))
    assert report.status == FAILED
    assert "runtime_yaml_valid" in failed_keys(report)


def test_a_yaml_alias_bomb_is_harmless(sandbox):
    bomb = b"a: &a ['lol','lol','lol','lol','lol','lol','lol','lol','lol']\n"
    for level in "bcdefghi":
        previous = chr(ord(level) - 1)
        bomb += f"{level}: &{level} [*{previous},*{previous},*{previous},*{previous},*{previous},*{previous}," \
                f"*{previous},*{previous},*{previous}]\n".encode()
    report = run(artifact_members(runtime__yaml=bomb))
    assert report.status == FAILED
    assert len(json.dumps(report.as_dict())) < 100_000


@pytest.mark.parametrize("runtime, failed", [
    (b"- a list\n", ["runtime_yaml_valid"]),
    (b"MODEL_ARTIFACT_VERSION: '3.0'\n", ["runtime_inference_env"]),
    (b"MODEL_DEPLOYMENT:\n  INFERENCE_CONDA_ENV:\n    INFERENCE_ENV_PATH: /opt/conda/envs/x\n"
     b"    INFERENCE_PYTHON_VERSION: '3.11'\n", ["runtime_artifact_version"]),
    (RUNTIME_YAML.replace(b"INFERENCE_ENV_SLUG: generalml_p311_cpu_v1", b"INFERENCE_ENV_SLUG: ''"),
     ["runtime_env_slug"]),
    (RUNTIME_YAML.replace(b"data_science", b"mystery"), ["runtime_env_type"]),
    (RUNTIME_YAML.replace(b"oci://service-conda-packs@namespace/", b"oci://bucket-without-namespace/"),
     ["runtime_env_path"]),
    (RUNTIME_YAML.replace(b"'3.11'", b"'2.7'"), ["runtime_python_version"]),
    (RUNTIME_YAML.replace(b"    INFERENCE_PYTHON_VERSION: '3.11'\n", b""), ["runtime_python_version"]),
    (b"\xff\xfe not utf-8", ["runtime_yaml_valid"]),
    (b"a: [unclosed\n", ["runtime_yaml_valid"]),
])
def test_runtime_yaml_problems(sandbox, runtime, failed):
    report = run(artifact_members(runtime__yaml=runtime))
    assert report.status == FAILED
    assert failed_keys(report) == failed


def test_a_published_environment_needs_no_slug_and_unquoted_versions_are_noted(sandbox):
    runtime = (b"MODEL_ARTIFACT_VERSION: 3.0\nMODEL_DEPLOYMENT:\n  INFERENCE_CONDA_ENV:\n"
               b"    INFERENCE_ENV_TYPE: published\n    INFERENCE_ENV_PATH: oci://packs@tenancy/envs/mine\n"
               b"    INFERENCE_PYTHON_VERSION: 3.10\n")
    report = run(artifact_members(runtime__yaml=runtime))
    assert report.status == READY, report.message
    assert "runtime_env_slug" not in checks_by_key(report)
    assert "quote it" in checks_by_key(report)["runtime_python_version"]["message"]


@pytest.mark.parametrize("schema, fragment", [
    (b"{not json", "not valid JSON"),
    (b'{"columns": []}', '"schema" list'),
    (b'{"schema": [{"name": "a"}]}', "needs a name and a dtype"),
    (b'{"schema": [{"name": "a", "dtype": "int64", "shape": "wide"}]}', "invalid shape"),
    (b"[" * 100_000 + b"]" * 100_000, "not valid JSON"),
])
def test_invalid_schemas_fail(sandbox, schema, fragment):
    report = run(artifact_members(input_schema__json=schema))
    assert report.status == FAILED
    assert failed_keys(report) == ["input_schema"]
    assert fragment in checks_by_key(report)["input_schema"]["message"]


def test_schemas_are_optional(sandbox):
    report = run(artifact_members(input_schema__json=None, output_schema__json=None))
    assert report.status == READY
    assert report.signature is None
    assert "signature_source" not in report.details
    assert checks_by_key(report)["input_schema"]["message"] == "not present (optional)"


HYDROSPHERE_CONTRACT = b"""\
kind: Model
name: tokenizer
model-type: "scikit-learn:1.5.2"
contract:
  tokenize:
    inputs:
      input_text: {shape: [-1, 1], type: string, profile: text}
    outputs:
      output_text: {shape: [-1, 1], type: string, profile: text}
  predict:
    inputs:
      features: {shape: [-1, 3], type: double, profile: numerical}
      mask: {shape: scalar, type: bool}
    outputs:
      score: {shape: [-1], type: float}
"""


def test_a_contract_file_gives_every_named_signature(sandbox):
    report = run(artifact_members(serving__yaml=HYDROSPHERE_CONTRACT))
    assert report.status == READY, report.message
    assert report.signature == {"signatures": {
        "tokenize": {
            "inputs": [{"name": "input_text", "dtype": "string", "shape": [-1, 1], "profile": "text"}],
            "outputs": [{"name": "output_text", "dtype": "string", "shape": [-1, 1], "profile": "text"}],
        },
        "predict": {
            "inputs": [{"name": "features", "dtype": "float64", "shape": [-1, 3], "profile": "numerical"},
                       {"name": "mask", "dtype": "bool", "shape": []}],
            "outputs": [{"name": "score", "dtype": "float32", "shape": [-1]}],
        },
    }}
    assert checks_by_key(report)["contract"]["message"] == "serving.yaml: tokenize: 1 input, 1 output; predict: 2 inputs, 1 output"
    assert report.details["signature_source"] == "contract"
    assert report.details["signature_file"] == "serving.yaml"
    assert report.details["contract"]["signatures"] == ["tokenize", "predict"]
    assert report.details["contract"]["model_type"] == "scikit-learn:1.5.2"


def test_a_simple_contract_file(sandbox):
    contract = (b"signature:\n  inputs:\n    - {name: x, dtype: float32, shape: [-1, 4]}\n"
                b"  outputs:\n    - {name: y, dtype: int64, shape: [-1]}\n")
    report = run(artifact_members(contract__yaml=contract))
    assert report.signature == {"inputs": [{"name": "x", "dtype": "float32", "shape": [-1, 4]}],
                                "outputs": [{"name": "y", "dtype": "int64", "shape": [-1]}]}
    assert report.details["signature_source"] == "contract"
    assert report.details["signature_file"] == "contract.yaml"


@pytest.mark.parametrize("contract, fragment", [
    (b"contract:\n  s:\n    inputs:\n      x: {type: quaternion}\n", "unknown type"),
    (b"contract:\n  s:\n    inputs:\n      x: {type: float, shape: [a]}\n", "invalid shape"),
    (b"contract:\n  s:\n    inputs:\n      x: {type: float, profile: audio}\n", "unknown profile"),
    (b"inputs: []\noutputs: []\n", "no inputs and no outputs"),
    (b"just: text\n", "no signature found"),
    (b"- 1\n", "not a mapping"),
])
def test_invalid_contracts_fail(sandbox, contract, fragment):
    report = run(artifact_members(contract__yaml=contract))
    assert report.status == FAILED
    assert failed_keys(report) == ["contract"]
    assert fragment in checks_by_key(report)["contract"]["message"]


def test_a_contract_with_a_python_tag_is_quarantined(sandbox):
    report = run(artifact_members(contract__yaml=b"signature: !!python/object/new:os.system [ls]\n"))
    assert report.status == QUARANTINED


def test_parse_contract_keeps_a_single_signature_under_its_name():
    signature, details, message = parse_contract({"contract": {"b": {"inputs": {"x": {"type": "int32"}}}}})
    assert signature == {"signatures": {"b": {"inputs": [{"name": "x", "dtype": "int32", "shape": [-1]}],
                                              "outputs": []}}}
    assert details["signatures"] == ["b"]
    assert message == "b: 1 input, 0 outputs"


def test_parse_contract_stores_a_lone_predict_signature_plainly():
    signature, _, message = parse_contract({"contract": {"predict": {"inputs": {"x": {"type": "int32"}}}}})
    assert signature == {"inputs": [{"name": "x", "dtype": "int32", "shape": [-1]}], "outputs": []}
    assert message == "1 input, 0 outputs"


@pytest.mark.parametrize("contract, fragment", [
    ({"contract": {"bad name!": {"inputs": {"x": {"type": "int32"}}}}}, "is not valid"),
    ({"contract": {"a": {"inputs": {"x": {"type": "int32"}}}, "b": {"inputs": {}}}},
     "signature 'b': the signature has no inputs and no outputs"),
    ({"contract": {"a": {"inputs": {"x": {"type": "int32"}}}, "b": {"inputs": {"y": {"type": "quaternion"}}}}},
     "signature 'b': inputs:"),
    ({"contract": {f"s{i}": {"inputs": {"x": {"type": "int32"}}} for i in range(40)}}, "more than 32 signatures"),
])
def test_parse_contract_refuses_a_bad_named_signature(contract, fragment):
    signature, _, message = parse_contract(contract)
    assert signature is None
    assert fragment in message


def test_a_malicious_pickle_inside_is_quarantined(sandbox):
    scanner = RecordingScanner()
    report = run(artifact_members(model__pkl=MALICIOUS_PICKLE), scanner)
    assert report.status == QUARANTINED
    assert "model.pkl" in report.message
    assert checks_by_key(report)["serialized_model:model.pkl"]["passed"] is False
    assert report.details["serialized_models"][0]["details"] == {"globals": ["os.system"]}


def test_pickles_are_found_by_content_whatever_their_name(sandbox):
    scanner = RecordingScanner()
    report = run(artifact_members(**{"assets/readme.txt": MALICIOUS_PICKLE, "data.bin": BENIGN_PICKLE}), scanner)
    assert report.status == QUARANTINED
    assert sorted(kind for kind, _ in scanner.calls) == ["pkl", "pkl", "pkl"]


def test_serialized_kinds_are_passed_to_the_scanner(sandbox):
    import gzip

    scanner = RecordingScanner()
    torch_zip = zip_bytes({"archive/data.pkl": BENIGN_PICKLE, "archive/version": b"3\n"})
    report = run(artifact_members(model__pkl=None, **{"model.joblib": gzip.compress(BENIGN_PICKLE),
                                                     "weights.pt": torch_zip, "legacy.pth": BENIGN_PICKLE}), scanner)
    assert report.status == READY, report.message
    assert sorted(kind for kind, _ in scanner.calls) == ["joblib", "pt", "pt"]


def test_without_a_scanner_pickles_cannot_pass(sandbox):
    report = inspect_artifact(io.BytesIO(zip_bytes(artifact_members())), scan_serialized=None)
    assert report.status == FAILED
    assert failed_keys(report) == ["serialized_model:model.pkl"]
    assert "cannot be checked" in report.message


def test_a_scanner_crash_is_a_failure_not_a_pass(sandbox):
    def broken(kind, fileobj):
        raise RuntimeError("scanner exploded")

    report = run(artifact_members(), broken)
    assert report.status == FAILED
    assert "scanner exploded" in checks_by_key(report)["serialized_model:model.pkl"]["message"]


def test_scanner_results_as_dicts_are_accepted(sandbox):
    report = run(artifact_members(), lambda kind, fileobj: {"status": "ready", "message": "ok"})
    assert report.status == READY


def test_the_scanner_gets_a_seekable_temporary_file(sandbox):
    seen = []

    def scanner(kind, fileobj):
        fileobj.seek(0, 2)
        seen.append((fileobj.tell(), getattr(fileobj, "name", None)))
        return Report(READY, "ok")

    run(artifact_members(), scanner)
    assert seen[0][0] == len(BENIGN_PICKLE)


def test_object_arrays_in_npy_files_are_scanned_as_pickles(sandbox):
    buffer = io.BytesIO()
    np.save(buffer, np.array([{"a": 1}], dtype=object), allow_pickle=True)
    plain = io.BytesIO()
    np.save(plain, np.zeros(4))
    scanner = RecordingScanner()
    report = run(artifact_members(model__pkl=None, **{"objects.npy": buffer.getvalue(),
                                                     "plain.npy": plain.getvalue()}), scanner)
    assert report.status == READY, report.message
    assert len(scanner.calls) == 1
    kind, payload = scanner.calls[0]
    assert kind == "pkl" and payload.startswith(b"\x80")


def test_pickles_inside_nested_zips_are_scanned(sandbox):
    scanner = RecordingScanner()
    inner = zip_bytes({"deep/model.pkl": MALICIOUS_PICKLE})
    report = run(artifact_members(**{"bundle.zip": inner}), scanner)
    assert report.status == QUARANTINED
    assert "bundle.zip/deep/model.pkl" in report.message


def test_zips_nested_beyond_the_depth_limit_fail(sandbox):
    report = run(artifact_members(**{"bundle.zip": nested_zip(3, {"model.pkl": BENIGN_PICKLE})}))
    assert report.status == FAILED
    assert report.details["archive_error"] == "too_deep"
    assert checks_by_key(report)["archive_safety"]["passed"] is False


def test_onnx_inside_an_artifact_is_inspected(sandbox):
    weights = numpy_helper.from_array(np.zeros(2, dtype=np.float32), "w")
    weights.ClearField("raw_data")
    weights.data_location = TensorProto.EXTERNAL
    weights.external_data.add(key="location", value="../../../etc/passwd")
    graph = helper.make_graph([helper.make_node("Add", ["x", "w"], ["y"])], "g",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2])], initializer=[weights])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]).SerializeToString()
    report = run(artifact_members(model__pkl=None, **{"model.onnx": model}))
    assert report.status == QUARANTINED
    assert "etc/passwd" in report.message


def test_a_pickle_named_onnx_is_still_scanned_as_a_pickle(sandbox):
    scanner = RecordingScanner()
    report = run(artifact_members(model__pkl=None, **{"model.onnx": MALICIOUS_PICKLE}), scanner)
    assert report.status == QUARANTINED
    assert scanner.calls == [("pkl", MALICIOUS_PICKLE)]


def test_a_member_named_like_a_model_but_broken_fails(sandbox):
    report = run(artifact_members(model__pkl=None, **{"model.safetensors": b"\xff" * 20}))
    assert report.status == FAILED
    assert failed_keys(report) == ["serialized_model:model.safetensors"]


@pytest.mark.parametrize("hostile, status", [
    ({"../../evil.py": b"owned"}, QUARANTINED),
    ({"sub/../../evil.py": b"owned"}, QUARANTINED),
])
def test_hostile_member_names_quarantine_the_artifact(sandbox, hostile, status):
    sandbox.sentinels.append(os.path.join(str(sandbox.cwd), "..", "..", "evil.py"))
    report = run(artifact_members(**hostile))
    assert report.status == status
    assert report.checks == [{"key": "archive_safety", "category": "archive",
                              "description": "the zip can be read safely within the limits", "passed": False,
                              "message": report.message}]


def test_score_py_twice_in_different_case_fails_the_artifact(sandbox):
    report = run(artifact_members(**{"SCORE.PY": b"import os\nos.system('evil')\n"}))
    assert report.status == FAILED
    assert report.details["archive_error"] == "case_collision"
    assert checks_by_key(report)["archive_safety"]["passed"] is False
    assert "'score.py' and 'SCORE.PY'" in report.message


def test_an_absolute_member_quarantines_the_artifact(sandbox):
    data = zip_bytes(artifact_members(**{"QQetc/evil": b"x"})).replace(b"QQetc/evil", b"/etc/evil.")
    report = run(data)
    assert report.status == QUARANTINED
    assert "absolute path" in report.message


def test_a_symlink_member_quarantines_the_artifact(sandbox):
    infos = [(zipfile.ZipInfo(name), data) for name, data in artifact_members().items()]
    infos.append((symlink_info("model_link.pkl"), b"/etc/passwd"))
    report = run(zip_with_info(infos))
    assert report.status == QUARANTINED
    assert "symbolic link" in report.message


def test_a_zip_bomb_artifact_is_quarantined(sandbox):
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in artifact_members().items():
            archive.writestr(name, data)
        with archive.open("huge.bin", "w") as member:
            for _ in range(20):
                member.write(bytes(1024 * 1024))
    report = run(buffer.getvalue())
    assert report.status == QUARANTINED
    assert "zip bomb" in report.message


def test_too_many_members_fail(sandbox):
    members = artifact_members(**{f"extra/{index}.txt": b"" for index in range(10_000)})
    report = run(members)
    assert report.status == FAILED
    assert report.details["archive_error"] == "too_many_members"


def test_custom_limits_are_honoured(sandbox):
    report = run(artifact_members(), limits=ArchiveLimits(max_members=3))
    assert report.status == FAILED


@pytest.mark.parametrize("data", [b"", b"not a zip", BENIGN_PICKLE])
def test_non_zips_fail(sandbox, data):
    report = run(data)
    assert report.status == FAILED
    assert report.details["archive_error"] in ("not_zip", "corrupt")


def test_a_pickle_with_a_zip_appended_is_quarantined(sandbox):
    report = run(MALICIOUS_PICKLE + zip_bytes(artifact_members()))
    assert report.status == QUARANTINED
    assert report.details["archive_error"] == "polyglot"


def test_inspect_zip_scans_members_without_artifact_checks(sandbox):
    report = inspect_zip(io.BytesIO(zip_bytes({"a.pkl": BENIGN_PICKLE, "b.txt": b"hi"})),
                         scan_serialized=RecordingScanner())
    assert report.status == READY
    assert [check["key"] for check in report.checks] == ["archive_safety", "serialized_model:a.pkl"]


def test_member_files_are_spooled_to_anonymous_temporary_files(sandbox, monkeypatch):
    created = []
    real = tempfile.TemporaryFile

    def recording(*args, **kwargs):
        handle = real(*args, **kwargs)
        created.append(handle)
        return handle

    monkeypatch.setattr(tempfile, "TemporaryFile", recording)
    run(artifact_members())
    assert created and all(handle.closed for handle in created)


# --- SavedModel ---------------------------------------------------------------------------------

def _message(*fields: bytes) -> bytes:
    return b"".join(fields)


def _string(number: int, text: str) -> bytes:
    return encode_len_field(number, text.encode())


def _varint(number: int, value: int) -> bytes:
    return encode_scalar_field(Field(number, VARINT, value))


def _tensor_info(name: str, dtype: int, dims: list[int]) -> bytes:
    shape = b"".join(encode_len_field(2, _varint(1, dim)) for dim in dims)
    return _message(_string(1, name), _varint(2, dtype), encode_len_field(3, shape))


def saved_model_pb(graph_bytes: int = 10_000) -> bytes:
    signature = _message(
        encode_len_field(1, _message(_string(1, "images"), encode_len_field(2, _tensor_info("x:0", 1, [-1, 28, 28])))),
        encode_len_field(2, _message(_string(1, "logits"), encode_len_field(2, _tensor_info("y:0", 1, [-1, 10])))),
        _string(3, "tensorflow/serving/predict"),
    )
    init_op = _message(encode_len_field(2, _message(_string(1, "init"), encode_len_field(2, b""))))
    meta_graph = _message(
        encode_len_field(1, _message(_string(4, "serve"), _string(5, "2.16.1"))),
        encode_len_field(2, os.urandom(graph_bytes)),  # graph_def: skipped, never parsed
        encode_len_field(5, _message(_string(1, "__saved_model_init_op"), encode_len_field(2, init_op))),
        encode_len_field(5, _message(_string(1, "serving_default"), encode_len_field(2, signature))),
    )
    return _message(_varint(1, 1), encode_len_field(2, meta_graph))


def savedmodel_members(root: str = "saved_model/") -> dict[str, bytes]:
    return {
        f"{root}saved_model.pb": saved_model_pb(),
        f"{root}fingerprint.pb": b"\x08\x01",
        f"{root}variables/variables.index": b"index",
        f"{root}variables/variables.data-00000-of-00001": os.urandom(1000),
        f"{root}assets/vocab.txt": b"a\nb\n",
    }


def run_savedmodel(members_or_bytes, scanner=None):
    data = members_or_bytes if isinstance(members_or_bytes, bytes) else zip_bytes(members_or_bytes)
    return inspect_savedmodel(io.BytesIO(data), scan_serialized=scanner or RecordingScanner())


def test_a_savedmodel_zip_gives_its_serving_signature(sandbox):
    report = run_savedmodel(savedmodel_members())
    assert report.status == READY, report.message
    assert report.detected_kind == "savedmodel"
    assert report.signature == {
        "inputs": [{"name": "images", "dtype": "float32", "shape": [-1, 28, 28]}],
        "outputs": [{"name": "logits", "dtype": "float32", "shape": [-1, 10]}],
    }
    details = report.details
    assert details["root"] == "saved_model/"
    assert details["signature_name"] == "serving_default"
    assert details["meta_graphs"] == [{"tags": ["serve"], "tensorflow_version": "2.16.1",
                                       "signatures": ["__saved_model_init_op", "serving_default"]}]
    assert [variable["name"] for variable in details["variables"]] == [
        "saved_model/variables/variables.index", "saved_model/variables/variables.data-00000-of-00001"]
    assert details["assets"] == ["saved_model/assets/vocab.txt"]
    assert details["fingerprint"] is True


def test_the_newest_tf_serving_version_is_used(sandbox):
    members = {**savedmodel_members("model/1/"), **savedmodel_members("model/10/"), **savedmodel_members("model/2/")}
    report = run_savedmodel(members)
    assert report.details["graph_file"] == "model/10/saved_model.pb"


def test_a_zip_without_saved_model_pb_fails(sandbox):
    report = run_savedmodel({"model/variables/variables.index": b""})
    assert report.status == FAILED
    assert failed_keys(report) == ["saved_model_present"]


def test_variables_without_an_index_fail(sandbox):
    members = savedmodel_members()
    del members["saved_model/variables/variables.index"]
    report = run_savedmodel(members)
    assert report.status == FAILED
    assert failed_keys(report) == ["saved_model_variables"]


def test_a_corrupt_saved_model_pb_fails(sandbox):
    report = run_savedmodel({"saved_model.pb": b"\x12\xff\xff\xff\x0f"})
    assert report.status == FAILED
    assert failed_keys(report) == ["saved_model_readable"]


def test_pbtxt_is_accepted_without_a_signature(sandbox):
    report = run_savedmodel({"saved_model.pbtxt": b"saved_model_schema_version: 1"})
    assert report.status == READY
    assert report.signature is None


def test_savedmodel_zips_get_the_same_safety_checks(sandbox):
    assert run_savedmodel({**savedmodel_members(), "../evil": b"x"}).status == QUARANTINED
    scanner = RecordingScanner()
    report = run_savedmodel({**savedmodel_members(), "saved_model/assets/tokenizer.pkl": MALICIOUS_PICKLE}, scanner)
    assert report.status == QUARANTINED
    assert scanner.calls == [("pkl", MALICIOUS_PICKLE)]


def test_real_files_on_disk_work(sandbox, tmp_path):
    path = tmp_path / "artifact.zip"
    path.write_bytes(zip_bytes(artifact_members()))
    with open(path, "rb") as handle:
        assert inspect_artifact(handle, scan_serialized=RecordingScanner()).status == READY
    path.unlink()


def test_pickle_module_is_never_used(sandbox, monkeypatch):
    monkeypatch.setattr(pickle, "load", lambda *args, **kwargs: pytest.fail("pickle.load called"))
    monkeypatch.setattr(pickle, "loads", lambda *args, **kwargs: pytest.fail("pickle.loads called"))
    monkeypatch.setattr(onnx, "load_external_data_for_model",
                        lambda *args, **kwargs: pytest.fail("external data loaded"))
    run(artifact_members(**{"model.onnx": helper.make_model(helper.make_graph([], "g", [], [])).SerializeToString()}))
    assert artifact.PICKLE_KINDS == {"pkl", "joblib", "pt"}


# --- pickles wherever they hide, and review -----------------------------------------------------

HIDDEN_PICKLE = b"N0" + MALICIOUS_PICKLE  # two harmless opcodes: no header says pickle, pickle.load runs it


def unvetted(name: str, called: bool) -> dict:
    module, _, attribute = name.rpartition(".")
    return {"import": name, "module": module, "name": attribute, "called": called}


class ReviewingScanner(RecordingScanner):
    """Puts pickles that import mylibrary in review, naming the imports it finds."""

    def __call__(self, kind, fileobj):
        report = super().__call__(kind, fileobj)
        data = self.calls[-1][1]
        if report.status == READY and b"mylibrary" in data:
            items = [unvetted(f"mylibrary.{name.decode()}", b"called-" + name in data)
                     for name in (b"Scorer", b"Kind") if name in data]
            return Report(REVIEW, "needs review", details={"unvetted": items})
        return report


@pytest.mark.parametrize("name", ["README", "weights.bin", "assets/notes.txt", "deep/er/LICENSE"])
def test_a_pickle_under_any_name_is_found_by_what_pickle_load_would_do(sandbox, name):
    report = run(artifact_members(**{name: HIDDEN_PICKLE}))
    assert report.status == QUARANTINED  # was ready: the member was never read
    assert f"{name}: " in report.message
    result = next(result for result in report.details["serialized_models"] if result["member"] == name)
    assert result["kind"] == "pkl"
    assert checks_by_key(report)[f"serialized_model:{name}"]["passed"] is False


def test_a_hidden_pickle_with_unvetted_imports_makes_the_artifact_review(sandbox):
    hidden = b"N0\x80\x02cmylibrary.models\nScorer\n(X\x02\x00\x00\x00f1tR."
    report = run(artifact_members(**{"weights.bin": hidden}))
    assert report.status == REVIEW, report.message
    assert report.details["unvetted"] == [unvetted("mylibrary.models.Scorer", True)]
    assert "mylibrary.models.Scorer" in report.message and "weights.bin" in report.message
    assert checks_by_key(report)["serialized_model:weights.bin"]["passed"] is False


def test_members_in_review_make_the_archive_review_with_one_list_of_imports(sandbox):
    members = artifact_members(**{"model.pkl": BENIGN_PICKLE + b"mylibrary Scorer Kind",
                                  "extra/second.pkl": BENIGN_PICKLE + b"mylibrary called-Scorer"})
    report = run(members, ReviewingScanner())
    assert report.status == REVIEW, report.message
    assert report.details["unvetted"] == [unvetted("mylibrary.Scorer", True), unvetted("mylibrary.Kind", False)]
    assert "2 imports" in report.message and "model.pkl" in report.message
    assert "passes its other" in report.message
    json.dumps(report.as_dict())


@pytest.mark.parametrize("extra, status", [
    ({"score.py": None}, FAILED),
    ({"other.pkl": MALICIOUS_PICKLE}, QUARANTINED),
])
def test_review_gives_way_to_worse(sandbox, extra, status):
    report = run(artifact_members(**{"model.pkl": BENIGN_PICKLE + b"mylibrary Scorer"}, **extra), ReviewingScanner())
    assert report.status == status
    assert "unvetted" not in report.details


def test_zips_and_savedmodels_propagate_review_too(sandbox):
    member = {"model.pkl": BENIGN_PICKLE + b"mylibrary Kind"}
    report = inspect_zip(io.BytesIO(zip_bytes(member)), scan_serialized=ReviewingScanner())
    assert report.status == REVIEW
    assert report.details["unvetted"] == [unvetted("mylibrary.Kind", False)]
    report = run_savedmodel({**savedmodel_members(), **member}, ReviewingScanner())
    assert report.status == REVIEW


def test_scanner_results_in_review_as_dicts_are_accepted(sandbox):
    report = run(artifact_members(), lambda kind, fileobj: {
        "status": "review", "message": "needs review", "details": {"unvetted": [unvetted("x.y", False)]}})
    assert report.status == REVIEW
    assert report.details["unvetted"] == [unvetted("x.y", False)]


def test_a_model_file_that_is_also_a_pickle_is_judged_both_ways(sandbox):
    hdf5 = b"\x89HDF\r\n\x1a\n" + bytes([0, 0, 0, 0, 0, 8, 8, 0]) + bytes(80)
    polyglot = MALICIOUS_PICKLE + bytes(512 - len(MALICIOUS_PICKLE)) + hdf5  # a pickle as HDF5's user block
    report = run(artifact_members(**{"model.h5": polyglot}))
    assert report.status == QUARANTINED
    result = next(result for result in report.details["serialized_models"] if result["member"] == "model.h5")
    assert result["kind"] == "h5"
    assert result["details"]["read_as_pickle"]["status"] == QUARANTINED


def test_hidden_pickles_in_plain_zips_and_savedmodels_are_found(sandbox):
    report = inspect_zip(io.BytesIO(zip_bytes({"data/blob": HIDDEN_PICKLE})), scan_serialized=RecordingScanner())
    assert report.status == QUARANTINED
    report = run_savedmodel({**savedmodel_members(), "saved_model/assets/vocab.bin": HIDDEN_PICKLE})
    assert report.status == QUARANTINED


def test_large_members_are_read_only_as_far_as_pickle_load_would(sandbox, monkeypatch):
    monkeypatch.setattr(artifact.SafeZip, "spool", lambda *args: pytest.fail("an unknown member was spooled"))
    opened, read = artifact.SafeZip.open_member, []

    @contextmanager
    def counting(self, info):
        with opened(self, info) as stream:
            original = stream.read
            stream.read = lambda *args: read.append(len(data := original(*args))) or data
            yield stream

    monkeypatch.setattr(artifact.SafeZip, "open_member", counting)
    # "This is text" starts a BINSTRING of 544 MB: pickle.load would stop at the end of the data.
    members = {"notes.txt": b"This is text. " + os.urandom(3_000_000), "weights.bin": b"\x00" + os.urandom(3_000_000)}
    report = inspect_zip(io.BytesIO(zip_bytes(members)), scan_serialized=RecordingScanner())
    assert report.status == READY
    assert report.details["serialized_models"] == []
    assert 0 < sum(read) < 300_000


def test_an_inspector_crash_fails_the_member_check(sandbox, monkeypatch):
    def crash(fileobj):
        raise RuntimeError("inspector exploded")

    monkeypatch.setattr(artifact, "_builtin_inspector", lambda kind: crash)
    report = run(artifact_members(**{"model.onnx": b"<?xml version='1.0'?><not-onnx/>"}))
    assert report.status == FAILED
    assert "could not be read: RuntimeError" in checks_by_key(report)["serialized_model:model.onnx"]["message"]


def test_following_paths_is_bounded_and_what_cannot_be_followed_fails(sandbox, monkeypatch):
    # Each name doubles the work if values are not remembered: 2**300 without memory.
    names = "".join(f"p{index} = p{index + 1} + p{index + 1} + '/x'\n" for index in range(300))
    report = run(artifact_members(score__py=score_py(names + "return open(p0)")))
    assert report.status == READY, report.message
    monkeypatch.setattr(score_paths, "MAX_STEPS", 5)
    report = run(artifact_members(score__py=score_py(names + "return open(p0)")))
    assert failed_keys(report) == ["score_py_paths"]
    assert "cannot be followed" in checks_by_key(report)["score_py_paths"]["message"]
