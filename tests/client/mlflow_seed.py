"""Seed a running MLflow tracking server with registered models of several flavors.

Run by tests/client/test_import_mlflow.py with the MLflow virtualenv's python (MLflow is never
installed in the registry's own environment):

    .mlflow-venv/bin/python tests/client/mlflow_seed.py TRACKING_URI SPEC.json

SPEC.json names files the test process made with its own libraries, for flavors the MLflow
virtualenv lacks (onnx, torch): {"onnx": "/path/model.onnx", "pytorch": "/path/model.pth"}.
Those models are logged as MLflow writes them (an MLmodel file beside the model file) and
registered with MlflowClient.create_model_version. The result (what was seeded) is printed as
one JSON object on the last line of stdout.
"""

from __future__ import annotations

import json
import sys
import tempfile
import warnings
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import yaml
from mlflow import MlflowClient
from mlflow.models import infer_signature
from sklearn.linear_model import LogisticRegression

warnings.filterwarnings("ignore")


def train(c: float):
    rng = np.random.default_rng(7)
    frame = pd.DataFrame({"tenure": rng.normal(size=60), "spend": rng.normal(size=60)})
    target = (frame["tenure"] + frame["spend"] > 0).astype(int)
    model = LogisticRegression(C=c, max_iter=200).fit(frame, target)
    return model, frame, target


def log_history(key: str, values: list[float]) -> None:
    for step, value in enumerate(values):
        mlflow.log_metric(key, value, step=step, timestamp=1_700_000_000_000 + 1000 * step)


def sklearn_versions(client: MlflowClient, seeded: dict) -> None:
    name = "churn"
    client.create_registered_model(name, tags={"team": "risk", "tier": "gold"},
                                   description="Churn classifier, trained weekly.")
    for number, c in enumerate((0.5, 1.0, 2.0), start=1):
        model, frame, target = train(c)
        with mlflow.start_run(run_name=f"churn-{number}") as run:
            mlflow.log_params({"C": c, "max_iter": 200, "solver": "lbfgs"})
            log_history("auc", [0.70 + 0.01 * number, 0.75 + 0.01 * number, 0.80 + 0.01 * number])
            mlflow.log_metric("f1", 0.6 + 0.05 * number)
            mlflow.sklearn.log_model(model, name="model", registered_model_name=name,
                                     serialization_format="pickle", pip_requirements=["scikit-learn"],
                                     signature=infer_signature(frame, model.predict(frame)))
        version = str(number)
        client.update_model_version(name, version, description=f"C={c}")
        client.set_model_version_tag(name, version, "validated", "yes" if number < 3 else "no")
        seeded.setdefault(name, []).append(run.info.run_id)
    client.transition_model_version_stage(name, "1", "Staging")
    client.transition_model_version_stage(name, "2", "Production")
    client.set_registered_model_alias(name, "champion", "2")
    # Version 3 has neither a stage nor an alias: it stays a draft.


def handmade_version(client: MlflowClient, name: str, flavor: dict, files: dict[str, str], seeded: dict,
                     *, params: dict, metric: float) -> str:
    """Log a model directory as MLflow writes it (MLmodel + files) and register it."""
    with tempfile.TemporaryDirectory() as folder, mlflow.start_run(run_name=name) as run:
        root = Path(folder) / "model"
        root.mkdir()
        for relative, source in files.items():
            target = root / relative
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(Path(source).read_bytes())
        mlmodel = {"artifact_path": "model", "flavors": flavor, "mlflow_version": mlflow.__version__,
                   "model_uuid": run.info.run_id, "run_id": run.info.run_id,
                   "utc_time_created": "2026-01-01 00:00:00.000000"}
        (root / "MLmodel").write_text(yaml.safe_dump(mlmodel), encoding="utf-8")
        mlflow.log_params(params)
        mlflow.log_metric("accuracy", metric)
        mlflow.log_artifacts(str(root), artifact_path="model")
        try:
            client.get_registered_model(name)
        except mlflow.exceptions.MlflowException:
            client.create_registered_model(name)
        version = client.create_model_version(name, f"{run.info.artifact_uri}/model", run_id=run.info.run_id)
        seeded.setdefault(name, []).append(run.info.run_id)
        return version.version


class Doubler(mlflow.pyfunc.PythonModel):
    def predict(self, context, model_input, params=None):
        return model_input * 2


def main() -> None:
    tracking_uri, spec_path = sys.argv[1], sys.argv[2]
    spec = json.loads(Path(spec_path).read_text())
    mlflow.set_tracking_uri(tracking_uri)
    client = MlflowClient()
    seeded: dict[str, list[str]] = {}
    sklearn_versions(client, seeded)

    if spec.get("onnx"):
        flavor = {"onnx": {"code": None, "data": "model.onnx", "onnx_version": "1.17.0",
                           "providers": ["CPUExecutionProvider"]},
                  "python_function": {"data": "model.onnx", "env": {"conda": "conda.yaml"},
                                      "loader_module": "mlflow.onnx", "python_version": "3.11.0"}}
        version = handmade_version(client, "fraud-onnx", flavor, {"model.onnx": spec["onnx"]}, seeded,
                                   params={"opset": 17}, metric=0.93)
        client.set_registered_model_alias("fraud-onnx", "production", version)

    if spec.get("pytorch"):
        flavor = {"pytorch": {"code": None, "model_data": "data", "pytorch_version": "2.5.0"},
                  "python_function": {"data": "data", "env": {"conda": "conda.yaml"},
                                      "loader_module": "mlflow.pytorch", "python_version": "3.11.0"}}
        version = handmade_version(client, "embedder-torch", flavor, {"data/model.pth": spec["pytorch"]}, seeded,
                                   params={"hidden": 8}, metric=0.88)
        client.transition_model_version_stage("embedder-torch", version, "Production")

    with mlflow.start_run(run_name="doubler") as run:
        mlflow.log_param("factor", 2)
        mlflow.pyfunc.log_model(name="model", python_model=Doubler(), registered_model_name="doubler",
                                pip_requirements=["mlflow"])
        seeded.setdefault("doubler", []).append(run.info.run_id)
    client.set_registered_model_alias("doubler", "prod", "1")
    print(json.dumps(seeded))


if __name__ == "__main__":
    main()
