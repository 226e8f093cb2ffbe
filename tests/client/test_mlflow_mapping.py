"""The importer's translations from MLflow's words to the registry's, without a server
(tests/client/test_import_mlflow.py runs the import against a real one)."""

import hashlib
import os
import time

import pytest

from registry_client.mlflow_import import (
    choose_source,
    convert_signature,
    normalize_tracking_uri,
    registry_tags,
    zip_folder,
)


def sha256(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_signatures_tags_and_uris_are_translated():
    mlmodel = {"signature": {
        "inputs": '[{"type": "long", "name": "age"}, {"type": "string", "name": "city"}, {"type": "array", "name": "x"}]',
        "outputs": '[{"type": "tensor", "tensor-spec": {"dtype": "float32", "shape": [-1, 3]}}]'}}
    assert convert_signature(mlmodel) == {
        "inputs": [{"name": "age", "dtype": "int64", "shape": [-1]}, {"name": "city", "dtype": "string", "shape": [-1]},
                   {"name": "x", "dtype": "object", "shape": [-1]}],
        "outputs": [{"name": "output", "dtype": "float32", "shape": [-1, 3]}]}
    assert convert_signature({"signature": {"inputs": "not json"}}) is None
    assert registry_tags({"team": "risk", "flag": "", "mlflow.source": "x", "long": "v" * 40, "a": "b,c"}) == [
        "flag", "team:risk"]
    assert normalize_tracking_uri("https://user:secret@mlflow.example:5000/root/") == (
        "https://mlflow.example:5000/root", ("user", "secret"))
    with pytest.raises(ValueError, match="http"):
        normalize_tracking_uri("file:///tmp/mlruns")


def test_flavors_choose_the_format():
    listing = [("MLmodel", 10), ("model.pkl", 5), ("data/model.pth", 7), ("model.onnx", 3), ("conda.yaml", 1)]
    sklearn = {"flavors": {"sklearn": {"pickled_model": "model.pkl", "serialization_format": "cloudpickle",
                                       "sklearn_version": "1.5"}, "python_function": {}}}
    assert (choose_source(sklearn, listing, "churn", "1").kind, choose_source(sklearn, listing, "c", "1").files) == (
        "pkl", [("model.pkl", 5)])
    skops = {"flavors": {"sklearn": {"pickled_model": "model.skops", "serialization_format": "skops"}}}
    assert choose_source(skops, listing, "churn", "1").kind == "artifact"
    torch = {"flavors": {"pytorch": {"model_data": "data", "pytorch_version": "2.5"}}}
    assert choose_source(torch, listing, "t", "2").files == [("data/model.pth", 7)]
    onnx = {"flavors": {"onnx": {"data": "model.onnx"}}}
    assert choose_source(onnx, listing, "o", "1").kind == "onnx"
    xgb = {"flavors": {"xgboost": {"xgb_version": "2.0"}, "python_function": {}}}
    source = choose_source(xgb, listing, "boost me", "4")
    assert (source.kind, source.filename, source.framework, source.size) == ("artifact", "boost-me-v4.zip", "xgboost", 26)


def test_the_artifact_zip_is_the_same_bytes_every_time(tmp_path):
    (tmp_path / "in" / "sub").mkdir(parents=True)
    (tmp_path / "in" / "MLmodel").write_text("flavors: {}\n")
    (tmp_path / "in" / "sub" / "w.bin").write_bytes(os.urandom(3000))
    zip_folder(tmp_path / "in", ["sub/w.bin", "MLmodel"], tmp_path / "a.zip")
    time.sleep(1.1)
    os.utime(tmp_path / "in" / "MLmodel")
    zip_folder(tmp_path / "in", ["MLmodel", "sub/w.bin"], tmp_path / "b.zip")
    assert sha256(tmp_path / "a.zip") == sha256(tmp_path / "b.zip")
