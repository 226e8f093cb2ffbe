"""prepare() writes an ADS-style model artifact (score.py, runtime.yaml, schemas, the model)
for a scikit-learn or ONNX model from a sample; verify() runs its predict() in a fresh process
and reports what came back; the folder is pushed as it is and the registry finds it ready."""

from __future__ import annotations

import json
import zipfile

import numpy as np
import pandas as pd
import pytest
import yaml
from sklearn.compose import ColumnTransformer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from registry_client import PrepareError, prepare, verify
from registry_client.artifact import zip_folder
from tests.client.conftest import run_cli

RNG = np.random.default_rng(7)


@pytest.fixture
def classifier():
    features = RNG.normal(size=(120, 4))
    labels = (features[:, 0] + features[:, 2] > 0).astype(int)
    return LogisticRegression().fit(features, labels), features[:10]


@pytest.fixture
def frame_pipeline():
    frame = pd.DataFrame({"tenure": RNG.integers(1, 60, 80), "spend": RNG.normal(50, 10, 80),
                          "plan": RNG.choice(["basic", "pro", "team"], 80)})
    labels = (frame["spend"] > 50).astype(int)
    pipeline = make_pipeline(ColumnTransformer([("num", StandardScaler(), ["tenure", "spend"]),
                                                ("cat", OneHotEncoder(handle_unknown="ignore"), ["plan"])]),
                             LogisticRegression())
    return pipeline.fit(frame, labels), frame.head(6)


def onnx_linear_model():
    """y = x @ W + b, float32 [N, 3] -> [N, 2], built with onnx itself (no converter needed)."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    weights = np.array([[1.0, 0.0], [0.5, 2.0], [-1.0, 1.0]], dtype=np.float32)
    bias = np.array([0.25, -0.5], dtype=np.float32)
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "W"], ["xw"]), helper.make_node("Add", ["xw", "b"], ["y"])],
        "linear", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [None, 3])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [None, 2])],
        [numpy_helper.from_array(weights, "W"), numpy_helper.from_array(bias, "b")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], producer_name="test")
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model, weights, bias


def test_a_scikit_learn_model_prepared_from_an_array_predicts_in_a_fresh_process(classifier, tmp_path):
    model, sample = classifier
    artifact = prepare(model, sample, tmp_path / "art", provenance=False)

    assert artifact.files == ["input_schema.json", "model.joblib", "output_schema.json", "requirements.txt",
                              "runtime.yaml", "score.py"]
    runtime = yaml.safe_load((tmp_path / "art" / "runtime.yaml").read_text())
    env = runtime["MODEL_DEPLOYMENT"]["INFERENCE_CONDA_ENV"]
    assert env["INFERENCE_ENV_PATH"] == "requirements.txt" and isinstance(env["INFERENCE_PYTHON_VERSION"], str)
    assert "MODEL_PROVENANCE" not in runtime
    inputs = json.loads((tmp_path / "art" / "input_schema.json").read_text())["schema"]
    assert inputs == [{"name": "input", "dtype": "float64", "shape": [-1, 4], "feature_type": "Continuous",
                       "required": True, "order": 0, "description": "input"}]
    outputs = json.loads((tmp_path / "art" / "output_schema.json").read_text())["schema"]
    assert [(o["name"], o["dtype"]) for o in outputs] == [("prediction", "int64")]
    assert any(line.startswith("scikit-learn==") for line in (tmp_path / "art" / "requirements.txt").read_text().split())

    result = verify(tmp_path / "art", sample[:5])
    assert result.ok, result.stderr
    assert result.prediction == {"prediction": model.predict(sample[:5]).tolist()}
    assert not list((tmp_path / "art").rglob("__pycache__"))  # nothing left behind to be zipped


def test_a_pipeline_fitted_on_a_dataframe_keeps_its_columns_and_dtypes(frame_pipeline, tmp_path):
    model, sample = frame_pipeline
    artifact = prepare(model, sample, tmp_path / "art", provenance=False)
    assert [(f["name"], f["dtype"]) for f in artifact.signature["inputs"]] == [
        ("tenure", "int64"), ("spend", "float64"), ("plan", "string")]
    result = verify(tmp_path / "art", sample)
    assert result.ok, result.stderr
    assert result.prediction["prediction"] == model.predict(sample).tolist()
    # The deployment's other payload forms reach the same answer.
    score = (tmp_path / "art" / "score.py").read_text()
    assert "COLUMNS = ['tenure', 'spend', 'plan']" in score


def test_an_onnx_model_gets_its_schemas_from_the_graph(tmp_path):
    model, weights, bias = onnx_linear_model()
    sample = RNG.normal(size=(4, 3)).astype(np.float32)
    artifact = prepare(model, sample, tmp_path / "art", provenance=False)
    assert artifact.signature == {"inputs": [{"name": "x", "dtype": "float32", "shape": [-1, 3]}],
                                  "outputs": [{"name": "y", "dtype": "float32", "shape": [-1, 2]}]}
    result = verify(tmp_path / "art", sample)
    assert result.ok, result.stderr
    np.testing.assert_allclose(result.prediction["prediction"], sample @ weights + bias, rtol=1e-5)
    with pytest.raises(PrepareError, match="2 dimensions; the model's input 'x' has 2|dimensions"):
        prepare(model, sample[0], tmp_path / "other", provenance=False)


@pytest.mark.parametrize("change, error", [
    ('    prediction = model.predict(deserialize(data))', "ZeroDivisionError: division by zero"),
    ('def load_model():', "ValueError: load_model() returned None"),
    ('    return {"prediction"', "TypeError: predict() returned what JSON cannot carry"),
])
def test_verify_reports_a_broken_artifact(classifier, tmp_path, change, error):
    model, sample = classifier
    prepare(model, sample, tmp_path / "art", provenance=False)
    score = tmp_path / "art" / "score.py"
    text = score.read_text()
    broken = {
        '    prediction = model.predict(deserialize(data))': "    prediction = 1 / 0",
        'def load_model():': "def load_model():\n    return None\n\n\ndef _unused():",
        '    return {"prediction"': '    return {"prediction": {1, 2}}\n    return {"prediction"',
    }[change]
    score.write_text(text.replace(change, broken, 1))
    result = verify(tmp_path / "art", sample)
    assert not result.ok and result.returncode == 1
    assert result.error.startswith(error), result.error
    assert "Traceback" in result.stderr


def test_what_cannot_be_prepared_is_said(classifier, tmp_path):
    model, sample = classifier
    with pytest.raises(PrepareError, match="give a fitted scikit-learn estimator"):
        prepare(object(), sample, tmp_path / "a")
    prepare(model, sample, tmp_path / "a", provenance=False)
    with pytest.raises(PrepareError, match="already holds an artifact"):
        prepare(model, sample, tmp_path / "a")
    prepare(model, sample, tmp_path / "a", overwrite=True, provenance=False)
    with pytest.raises(PrepareError, match="cannot predict on the sample"):
        prepare(model, sample[:, :2], tmp_path / "b", provenance=False)
    assert not verify(tmp_path / "nothing-here", sample).ok


def test_the_zip_holds_the_artifact_files_only(classifier, tmp_path):
    model, sample = classifier
    prepare(model, sample, tmp_path / "art", provenance=False)
    (tmp_path / "art" / "__pycache__").mkdir()
    (tmp_path / "art" / "__pycache__" / "score.cpython-311.pyc").write_bytes(b"\x00")
    (tmp_path / "art" / ".ipynb_checkpoints").mkdir()
    (tmp_path / "art" / ".ipynb_checkpoints" / "score-checkpoint.py").write_text("x")
    first = zip_folder(tmp_path / "art", tmp_path / "one.zip").read_bytes()
    assert zip_folder(tmp_path / "art", tmp_path / "two.zip").read_bytes() == first  # the same bytes each time
    with zipfile.ZipFile(tmp_path / "one.zip") as archive:
        assert archive.namelist() == ["input_schema.json", "model.joblib", "output_schema.json", "requirements.txt",
                                      "runtime.yaml", "score.py"]


@pytest.mark.parametrize("which", ["sklearn-frame", "onnx"])
def test_a_prepared_folder_is_pushed_as_it_is_and_the_registry_finds_it_ready(connect, frame_pipeline, tmp_path,
                                                                              which):
    if which == "onnx":
        model, _, _ = onnx_linear_model()
        sample = RNG.normal(size=(2, 3)).astype(np.float32)
    else:
        model, sample = frame_pipeline
    artifact = prepare(model, sample, tmp_path / "art", provenance=False)
    assert verify(artifact.path, sample).ok

    version = connect("editor").context("acme").model("churn", create=True).create_version()
    uploaded = version.upload("artifact", artifact.path, wait=True)

    assert uploaded.status == "ready", (uploaded.status_message, uploaded.report)
    assert uploaded.original_filename == "art.zip"
    checks = uploaded.report["checks"]
    assert checks and all(check["passed"] for check in checks), [c for c in checks if not c["passed"]]
    read = [{key: field[key] for key in ("name", "dtype", "shape")} for field in version.refresh().signature["inputs"]]
    assert read == artifact.signature["inputs"]  # from input_schema.json


def test_regctl_pushes_a_prepared_folder(cli_env, classifier, tmp_path):
    model, sample = classifier
    prepare(model, sample, tmp_path / "churn-artifact", provenance=False)
    pushed = run_cli("push", "acme", "churn", "churn-artifact", "--create-model", "--publish", "--json",
                     env=cli_env, cwd=tmp_path)
    assert pushed.returncode == 0, pushed.stderr
    result = json.loads(pushed.stdout)
    assert result["status"] == "published"
    assert [(f["kind"], f["filename"], f["status"]) for f in result["files"]] == [
        ("artifact", "churn-artifact.zip", "ready")]
    wrong = run_cli("push", "acme", "churn", "pkl=churn-artifact", env=cli_env, cwd=tmp_path)
    assert wrong.returncode == 1 and "is a folder" in wrong.stderr


@pytest.fixture
def cli_env(server_url, tokens, tmp_path):
    return {"REGISTRY_URL": server_url, "REGISTRY_TOKEN": tokens["publisher"], "REGISTRY_PROVENANCE": "0",
            "REGISTRY_CONFIG": str(tmp_path / "absent.toml"), "REGISTRY_CACHE_DIR": str(tmp_path / "cache")}


def test_runtime_yaml_carries_the_git_provenance(classifier, tmp_path, monkeypatch):
    import subprocess

    repo = tmp_path / "repo"
    repo.mkdir()
    for args in (["init", "-q", "-b", "main"], ["-c", "user.email=a@b", "-c", "user.name=A", "commit", "-q",
                                                "--allow-empty", "-m", "x"],
                 ["remote", "add", "origin", "https://bot:tok3n@git.example.com/t/churn.git"]):
        subprocess.run(["git", *args], cwd=repo, check=True, capture_output=True)
    monkeypatch.chdir(repo)
    monkeypatch.delenv("REGISTRY_PROVENANCE")
    model, sample = classifier
    prepare(model, sample, tmp_path / "art")
    provenance = yaml.safe_load((tmp_path / "art" / "runtime.yaml").read_text())["MODEL_PROVENANCE"]
    assert provenance["REPOSITORY_URL"] == "https://git.example.com/t/churn.git"
    assert provenance["GIT_BRANCH"] == "main" and len(provenance["GIT_COMMIT"]) == 40
    assert provenance["GIT_DIRTY"] == "false"
