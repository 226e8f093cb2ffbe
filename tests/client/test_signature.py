"""infer_signature: names, dtypes and shapes in the registry's vocabulary, accepted as sent."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pytest

from registry.services.common import clean_signature
from registry_client import infer_signature


def accepted(signature: dict) -> dict:
    """The server's own validation returns it unchanged."""
    assert clean_signature(signature) == signature
    return signature


def test_numpy_arrays():
    sig = accepted(infer_signature(np.zeros((8, 3, 2), dtype=np.float32), np.zeros(8, dtype=np.int64)))
    assert sig == {"inputs": [{"name": "input", "dtype": "float32", "shape": [-1, 3, 2]}],
                   "outputs": [{"name": "output", "dtype": "int64", "shape": [-1]}]}
    assert infer_signature(np.array(["a", "b"]))["inputs"][0]["dtype"] == "string"
    assert infer_signature(np.array([True]))["inputs"][0]["dtype"] == "bool"
    assert infer_signature(np.array([1], dtype=np.uint8))["inputs"][0]["dtype"] == "uint8"
    assert infer_signature(np.array(["x", "y"], dtype=object))["inputs"][0]["dtype"] == "string"
    assert infer_signature(np.array(["2026-01-01"], dtype="datetime64[ns]"))["inputs"][0]["dtype"] == "datetime"


def test_structured_numpy_array_gives_one_field_per_name():
    rows = np.zeros(4, dtype=[("age", np.int32), ("income", np.float64), ("embedding", np.float32, (16,))])
    assert accepted(infer_signature(rows))["inputs"] == [
        {"name": "age", "dtype": "int32", "shape": [-1]},
        {"name": "income", "dtype": "float64", "shape": [-1]},
        {"name": "embedding", "dtype": "float32", "shape": [-1, 16]},
    ]


def test_list_of_dicts_and_dict_of_columns():
    rows = [
        {"age": 31, "income": 52000.5, "city": "Lyon", "member": True, "seen": dt.datetime(2026, 1, 1)},
        {"age": 45, "income": 61000, "city": None, "member": False, "seen": dt.datetime(2026, 2, 1)},
    ]
    sig = accepted(infer_signature(rows, [{"churn": 0.2}]))
    assert sig["inputs"] == [
        {"name": "age", "dtype": "int64", "shape": [-1]},
        {"name": "income", "dtype": "float64", "shape": [-1]},  # int and float mixed: float
        {"name": "city", "dtype": "string", "shape": [-1]},  # None ignored
        {"name": "member", "dtype": "bool", "shape": [-1]},
        {"name": "seen", "dtype": "datetime", "shape": [-1]},
    ]
    assert sig["outputs"] == [{"name": "churn", "dtype": "float64", "shape": [-1]}]
    columns = accepted(infer_signature({"pixels": np.zeros((2, 28, 28), dtype=np.uint8), "label": [1, 2]}))
    assert columns["inputs"] == [{"name": "pixels", "dtype": "uint8", "shape": [-1, 28, 28]},
                                 {"name": "label", "dtype": "int64", "shape": [-1]}]
    assert accepted(infer_signature([[0.1, 0.2], [0.3, 0.4]]))["inputs"] == [
        {"name": "input", "dtype": "float64", "shape": [-1, 2]}]


def test_pandas_dataframe_one_field_per_column():
    pd = pytest.importorskip("pandas")  # installed by the client's [test] extra (make install)
    frame = pd.DataFrame({
        "age": pd.Series([31, 45], dtype="int64"),
        "score": pd.Series([0.5, 0.7], dtype="float32"),
        "city": ["Lyon", "Paris"],
        "plan": pd.Categorical(["basic", "pro"]),
        "member": [True, False],
        "joined": pd.to_datetime(["2026-01-01", "2026-02-01"]),
        "visits": pd.array([1, None], dtype="Int64"),
    })
    sig = accepted(infer_signature(frame, pd.Series([0, 1], name="churn")))
    assert sig["inputs"] == [
        {"name": "age", "dtype": "int64", "shape": [-1]},
        {"name": "score", "dtype": "float32", "shape": [-1]},
        {"name": "city", "dtype": "string", "shape": [-1]},
        {"name": "plan", "dtype": "string", "shape": [-1]},
        {"name": "member", "dtype": "bool", "shape": [-1]},
        {"name": "joined", "dtype": "datetime", "shape": [-1]},
        {"name": "visits", "dtype": "int64", "shape": [-1]},
    ]
    assert sig["outputs"] == [{"name": "churn", "dtype": "int64", "shape": [-1]}]
