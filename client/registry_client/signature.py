"""Infer a model signature from sample data, in the registry's vocabulary.

    signature = infer_signature(X_train[:5], model.predict(X_train[:5]))
    model.create_version(..., signature=signature)

A signature is {"inputs": [...], "outputs": [...]} of {"name", "dtype", "shape"}; `shape`
lists dimensions with -1 for "any", and the first (batch) dimension is always -1. Samples may
be a numpy array (structured arrays give one field per name), a pandas DataFrame (one field
per column) or Series, a list of dicts (records: keys become names), a dict of arrays or
lists (columns), a list of scalars or of lists, or a torch/tensorflow tensor. numpy and pandas
are never imported: objects are recognised by what they have.

A contract may hold several named signatures: `named_signatures(predict=..., tokenize=...)`
builds one, and `signatures_of(v.signature)` reads any version's as {name: signature}. A
plain {"inputs", "outputs"} is the signature named "predict" (DEFAULT_SIGNATURE).
"""

from __future__ import annotations

import datetime as dt
import decimal
from collections.abc import Mapping, Sequence
from typing import Any

# The registry's dtypes (SIGNATURE_DTYPES on the server).
DTYPES = {
    "float16", "float32", "float64", "bfloat16", "int8", "int16", "int32", "int64",
    "uint8", "uint16", "uint32", "uint64", "string", "bool", "bytes", "datetime", "object",
    "complex64", "complex128",
}
# numpy dtype.kind + itemsize -> registry dtype
_NUMPY_KIND = {"b": "bool", "U": "string", "S": "bytes", "M": "datetime", "m": "object", "O": "object", "V": "bytes"}
_BITS = {"f": "float", "i": "int", "u": "uint", "c": "complex"}
# pandas' nullable extension dtypes
_PANDAS_NULLABLE = {
    **{f"Int{bits}": f"int{bits}" for bits in (8, 16, 32, 64)},
    **{f"UInt{bits}": f"uint{bits}" for bits in (8, 16, 32, 64)},
    "Float32": "float32", "Float64": "float64",
}


DEFAULT_SIGNATURE = "predict"


def named_signatures(signatures: Mapping[str, Mapping] | None = None, /, **named: Mapping) -> dict:
    """A contract of several named signatures, for `create_version(signature=...)`:
    `named_signatures(predict=infer_signature(X, y), tokenize=infer_signature(texts, tokens))`."""
    merged = {**dict(signatures or {}), **named}
    return {"signatures": {str(name): {"inputs": list(value.get("inputs") or []),
                                       "outputs": list(value.get("outputs") or [])}
                           for name, value in merged.items()}}


def signatures_of(signature: Mapping | None) -> dict[str, dict]:
    """{name: {"inputs", "outputs"}} of a signature as the registry serves it (plain or named)."""
    if not isinstance(signature, Mapping) or not signature:
        return {}
    result: dict[str, dict] = {}
    if "inputs" in signature or "outputs" in signature:
        result[DEFAULT_SIGNATURE] = {"inputs": list(signature.get("inputs") or []),
                                     "outputs": list(signature.get("outputs") or [])}
    for name, value in (signature.get("signatures") or {}).items():
        if isinstance(value, Mapping):
            result[str(name)] = {"inputs": list(value.get("inputs") or []), "outputs": list(value.get("outputs") or [])}
    return result


def infer_signature(inputs: Any, outputs: Any = None) -> dict:
    """{"inputs": fields of `inputs`, "outputs": fields of `outputs` (or [])}."""
    signature = {"inputs": _fields(inputs, default_name="input")}
    signature["outputs"] = _fields(outputs, default_name="output") if outputs is not None else []
    return signature


def _fields(sample: Any, *, default_name: str) -> list[dict]:
    if _is_dataframe(sample):
        return [_field(str(column), _series_dtype(sample[column]), [-1]) for column in sample.columns]
    if _is_series(sample):
        return [_field(str(sample.name) if sample.name is not None else default_name, _series_dtype(sample), [-1])]
    if _is_array(sample):
        names = getattr(sample.dtype, "names", None)
        if names:  # a structured (record) array: one field per name
            fields = []
            for name in names:
                dtype = sample.dtype.fields[name][0]  # '(16,)<f4' for a sub-array: base float32, shape (16,)
                fields.append(_field(name, _array_dtype(dtype.base), [-1, *[int(d) for d in dtype.shape]]))
            return fields
        return [_field(default_name, _array_dtype(sample.dtype, sample), _batch_shape(sample.shape))]
    if isinstance(sample, Mapping):  # columns: {name: array | list | scalar}
        return [_column_field(str(name), value) for name, value in sample.items()]
    if isinstance(sample, Sequence) and not isinstance(sample, (str, bytes, bytearray)):
        items = list(sample)
        if items and all(isinstance(item, Mapping) for item in items):
            return _records_fields(items)
        dtype, shape = _python_values(items)
        return [_field(default_name, dtype, shape)]
    dtype, _ = _python_values([sample])
    return [_field(default_name, dtype, [-1])]


def _field(name: str, dtype: str, shape: list[int]) -> dict:
    return {"name": name, "dtype": dtype if dtype in DTYPES else "object", "shape": shape}


def _batch_shape(shape: Sequence[int]) -> list[int]:
    dims = [int(d) if d is not None else -1 for d in shape]
    return [-1, *dims[1:]] if dims else [-1]


# --- duck typing ------------------------------------------------------------------------

def _is_dataframe(value: Any) -> bool:
    return hasattr(value, "columns") and hasattr(value, "dtypes") and hasattr(value, "iloc")


def _is_series(value: Any) -> bool:
    return hasattr(value, "dtype") and hasattr(value, "iloc") and hasattr(value, "name") and not _is_dataframe(value)


def _is_array(value: Any) -> bool:
    return hasattr(value, "dtype") and hasattr(value, "shape") and not isinstance(value, (str, bytes))


def _array_dtype(dtype: Any, sample: Any = None) -> str:
    """numpy dtype (or a torch/tensorflow dtype) -> registry dtype."""
    kind = getattr(dtype, "kind", None)
    if isinstance(kind, str) and hasattr(dtype, "itemsize"):
        if kind in _BITS:
            return f"{_BITS[kind]}{dtype.itemsize * 8}"
        if kind == "O" and sample is not None:
            return _object_values(sample)
        return _NUMPY_KIND.get(kind, "object")
    # torch.float32 / tf.float32 / "float32"
    name = str(getattr(dtype, "name", None) or dtype).rsplit(".", 1)[-1].removeprefix("<dtype: '").rstrip("'>")
    aliases = {"float": "float32", "double": "float64", "half": "float16", "long": "int64", "int": "int32",
               "bool_": "bool", "str": "string", "object_": "object"}
    name = aliases.get(name, name)
    return name if name in DTYPES else "object"


def _object_values(sample: Any) -> str:
    """An object array or column: look at its values (strings are the usual case)."""
    try:
        values = sample.ravel().tolist() if hasattr(sample, "ravel") else list(sample)
    except (TypeError, ValueError):
        return "object"
    return _python_values(values[:1000])[0]


def _series_dtype(series: Any) -> str:
    dtype = series.dtype
    name = str(dtype)
    if name in ("string", "str") or name.startswith("string["):
        return "string"
    if name == "category":
        return _series_dtype(series.cat.categories.to_series())
    if name.startswith("datetime64"):
        return "datetime"
    if name in ("boolean",):
        return "bool"
    if name in _PANDAS_NULLABLE:
        return _PANDAS_NULLABLE[name]
    if name == "object":
        return _object_values(series.dropna().iloc[:1000].tolist())
    return _array_dtype(dtype)


def _column_field(name: str, value: Any) -> dict:
    if _is_series(value):
        return _field(name, _series_dtype(value), [-1])
    if _is_array(value):
        return _field(name, _array_dtype(value.dtype, value), _batch_shape(value.shape))
    if isinstance(value, Sequence) and not isinstance(value, (str, bytes, bytearray)):
        dtype, shape = _python_values(list(value))
        return _field(name, dtype, shape)
    return _field(name, _python_values([value])[0], [-1])


def _records_fields(rows: list[Mapping]) -> list[dict]:
    names: dict[str, list] = {}
    for row in rows:
        for key, value in row.items():
            names.setdefault(str(key), []).append(value)
    fields = []
    for name, values in names.items():
        if all(_is_array(v) for v in values if v is not None) and any(v is not None for v in values):
            first = next(v for v in values if v is not None)
            fields.append(_field(name, _array_dtype(first.dtype, first), [-1, *[int(d) for d in first.shape]]))
            continue
        dtype, shape = _python_values(values)
        fields.append(_field(name, dtype, shape))
    return fields


def _python_values(values: list) -> tuple[str, list[int]]:
    """(dtype, shape with batch -1) of a list of Python values; None values are ignored."""
    present = [v for v in values if v is not None]
    if present and all(isinstance(v, (list, tuple)) for v in present):
        lengths = {len(v) for v in present}
        inner = _python_values([x for v in present for x in v])
        inner_shape = inner[1][1:]
        width = lengths.pop() if len(lengths) == 1 else -1
        return inner[0], [-1, width, *inner_shape]
    kinds = {_python_dtype(v) for v in present}
    if not kinds:
        return "object", [-1]
    if len(kinds) == 1:
        return kinds.pop(), [-1]
    if kinds <= {"int64", "float64"}:
        return "float64", [-1]
    return "object", [-1]


def _python_dtype(value: Any) -> str:
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int):
        return "int64"
    if isinstance(value, (float, decimal.Decimal)):
        return "float64"
    if isinstance(value, complex):
        return "complex128"
    if isinstance(value, str):
        return "string"
    if isinstance(value, (bytes, bytearray)):
        return "bytes"
    if isinstance(value, (dt.datetime, dt.date)):
        return "datetime"
    if _is_array(value):  # a numpy scalar
        return _array_dtype(value.dtype, value)
    return "object"
