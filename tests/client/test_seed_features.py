"""The client's side of the seed features: model-level metrics and metadata, one metric across
versions, and named signatures, against the live registry."""

from __future__ import annotations

import datetime as dt

import pytest

from registry_client import BadRequest, named_signatures, signatures_of

FEATURES = {"name": "features", "dtype": "float32", "shape": [-1, 4]}
SCORE = {"name": "score", "dtype": "float32", "shape": [-1]}
TEXT = {"name": "text", "dtype": "string", "shape": [-1, 1]}


def test_model_metrics_metadata_and_a_metric_across_versions(connect):
    model = connect("editor").context("acme").model("churn", create=True)
    logged = model.log_metrics({"drift": 0.12, "traffic": 1200}, step=1)
    assert sorted(item["key"] for item in logged) == ["drift", "traffic"]
    model.log_metric("drift", 0.2, step=2, wallclock=dt.datetime(2026, 11, 2, tzinfo=dt.timezone.utc))
    assert [(m["step"], m["value"]) for m in model.metrics("drift")] == [(1, 0.12), (2, 0.2)]
    assert model.metrics("drift")[1]["wallclock"] == "2026-11-02T00:00:00Z"
    with pytest.raises(BadRequest, match="Infinity is not a JSON value"):
        model.log_metric("drift", float("inf"))

    model.update(metadata={"team": "risk"})
    model.update_metadata(monitoring={"dashboard": "grafana/churn"})
    assert model.refresh().metadata == {"team": "risk", "monitoring": {"dashboard": "grafana/churn"}}

    for accuracy in (0.7, 0.8):
        model.create_version().log_metrics([{"key": "accuracy", "value": accuracy - 0.1, "step": 1},
                                            {"key": "accuracy", "value": accuracy, "step": 2}])
    model.create_version()  # no accuracy: absent from the series
    across = model.metric_across_versions("accuracy")
    assert [(point["version"], point["value"], point["step"]) for point in across] == [(1, 0.7, 2), (2, 0.8, 2)]


def test_named_signatures_round_trip(connect):
    model = connect("editor").context("acme").model("tokenizer", create=True)
    contract = named_signatures(predict={"inputs": [FEATURES], "outputs": [SCORE]},
                                tokenize={"inputs": [TEXT], "outputs": [TEXT]})
    version = model.create_version(signature=contract)
    assert version.signature == contract
    assert sorted(version.signatures) == ["predict", "tokenize"]
    plain = model.create_version(signature={"inputs": [FEATURES], "outputs": [SCORE]})
    assert plain.signatures == {"predict": {"inputs": [FEATURES], "outputs": [SCORE]}}
    assert signatures_of(None) == {}
    with pytest.raises(BadRequest, match="Signature name 'to kenize' is not valid"):
        model.create_version(signature=named_signatures({"to kenize": {"inputs": [TEXT]}}))
