"""safetensors: read and validate the header only; the tensor data is never loaded.

Layout: 8 bytes little-endian header length N, N bytes of JSON, then the data section. The
JSON maps tensor names to {dtype, shape, data_offsets: [begin, end]} (offsets relative to
the data section) plus an optional "__metadata__" map of strings.

Validation follows what the reference loader enforces, so a file that passes here loads
there: header length > 0, at most 100 MB and inside the file; JSON object starting with "{";
known dtypes; shapes of non-negative integers; for every tensor begin <= end and
end - begin == elements * dtype size; tensors neither overlap nor leave gaps, and together
cover the data section exactly (a gap or trailing bytes could carry content no tool shows).
Any violation makes the report FAILED with the precise reason.

No signature is produced: tensors are weights, not a model's inputs and outputs.
"""

import json
import math
import struct

from registry.introspection.report import FAILED, READY, Report

MAX_HEADER_BYTES = 100 * 1000 * 1000
MAX_LISTED_TENSORS = 1000
MAX_METADATA_VALUE_CHARS = 2000
MAX_LISTED_METADATA = 200

# Element sizes in bits (sub-byte float formats pack several elements per byte).
DTYPE_BITS = {
    "BOOL": 8, "U8": 8, "I8": 8, "F8_E5M2": 8, "F8_E4M3": 8, "F8_E8M0": 8,
    "I16": 16, "U16": 16, "F16": 16, "BF16": 16,
    "I32": 32, "U32": 32, "F32": 32,
    "I64": 64, "U64": 64, "F64": 64, "C64": 64,
    "F4": 4, "F6_E2M3": 6, "F6_E3M2": 6,
}
DTYPE_NAMES = {
    "BOOL": "bool", "U8": "uint8", "I8": "int8", "I16": "int16", "U16": "uint16", "F16": "float16",
    "BF16": "bfloat16", "I32": "int32", "U32": "uint32", "F32": "float32", "I64": "int64", "U64": "uint64",
    "F64": "float64", "C64": "complex64", "F8_E5M2": "float8_e5m2", "F8_E4M3": "float8_e4m3",
    "F8_E8M0": "float8_e8m0", "F4": "float4_e2m1", "F6_E2M3": "float6_e2m3", "F6_E3M2": "float6_e3m2",
}


class _Invalid(Exception):
    pass


def _reject_duplicates(pairs):
    result = {}
    for key, value in pairs:
        if key in result:
            raise _Invalid(f"header names {key!r} twice")
        result[key] = value
    return result


def _reject_constant(name):
    raise _Invalid(f"header contains {name}, which is not JSON")


def _is_count(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _parse_header(raw: bytes) -> dict:
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as error:
        raise _Invalid(f"header is not UTF-8 ({error.reason} at byte {error.start})") from None
    if not text.startswith("{"):
        raise _Invalid("header does not start with '{'")
    try:
        header = json.loads(text, object_pairs_hook=_reject_duplicates, parse_constant=_reject_constant)
    except json.JSONDecodeError as error:
        raise _Invalid(f"header is not valid JSON ({error.msg} at character {error.pos})") from None
    except RecursionError:
        raise _Invalid("header JSON is nested too deeply") from None
    if not isinstance(header, dict):
        raise _Invalid("header is not a JSON object")
    return header


def _validate_metadata(metadata) -> dict:
    if not isinstance(metadata, dict):
        raise _Invalid("__metadata__ is not an object")
    for key, value in metadata.items():
        if not isinstance(value, str):
            raise _Invalid(f"__metadata__ value for {key!r} is not a string")
    return metadata


def _validate_tensor(name: str, info, data_size: int) -> tuple[str, list[int], int, int, int]:
    if not isinstance(info, dict):
        raise _Invalid(f"tensor {name!r}: entry is not an object")
    dtype, shape, offsets = info.get("dtype"), info.get("shape"), info.get("data_offsets")
    if dtype not in DTYPE_BITS:
        raise _Invalid(f"tensor {name!r}: unknown dtype {dtype!r}")
    if not isinstance(shape, list) or not all(_is_count(dim) for dim in shape):
        raise _Invalid(f"tensor {name!r}: shape must be a list of non-negative integers")
    if not (isinstance(offsets, list) and len(offsets) == 2 and all(_is_count(value) for value in offsets)):
        raise _Invalid(f"tensor {name!r}: data_offsets must be two non-negative integers")
    begin, end = offsets
    if begin > end:
        raise _Invalid(f"tensor {name!r}: data_offsets begin {begin} is after end {end}")
    if end > data_size:
        raise _Invalid(f"tensor {name!r}: data_offsets end {end} is outside the data section of {data_size} bytes")
    elements = math.prod(shape)
    bits = elements * DTYPE_BITS[dtype]
    if bits % 8:
        raise _Invalid(f"tensor {name!r}: {elements} elements of {dtype} do not fill whole bytes")
    if end - begin != bits // 8:
        raise _Invalid(
            f"tensor {name!r}: {end - begin} bytes between its offsets, but shape {shape} of {dtype} "
            f"needs {bits // 8}"
        )
    return dtype, shape, begin, end, elements


def inspect_safetensors(fileobj, size: int | None = None) -> Report:
    """Read and validate a safetensors header; the data section is never read."""
    if size is None:
        size = fileobj.seek(0, 2)
    fileobj.seek(0)
    prefix = fileobj.read(8)
    if len(prefix) < 8:
        return Report(FAILED, f"file of {size} bytes is too short for a safetensors header length")
    header_length = struct.unpack("<Q", prefix)[0]
    if header_length == 0:
        return Report(FAILED, "header length is 0")
    if header_length > MAX_HEADER_BYTES:
        return Report(FAILED, f"header length {header_length} is larger than the {MAX_HEADER_BYTES}-byte limit")
    if header_length > size - 8:
        return Report(FAILED, f"header length {header_length} runs past the end of the file ({size} bytes)")
    raw = fileobj.read(header_length)
    if len(raw) != header_length:
        return Report(FAILED, "file is shorter than its header length")
    data_size = size - 8 - header_length
    try:
        header = _parse_header(raw)
        metadata = _validate_metadata(header.pop("__metadata__", {}))
        tensors = []
        for name, info in header.items():
            tensors.append((name, *_validate_tensor(name, info, data_size)))
        _check_layout(tensors, data_size)
    except _Invalid as error:
        return Report(FAILED, f"invalid safetensors file: {error}", detected_kind=None)

    dtype_counts: dict[str, int] = {}
    for _, dtype, *_ in tensors:
        dtype_counts[dtype] = dtype_counts.get(dtype, 0) + 1
    parameter_count = sum(elements for *_, elements in tensors)
    details = {
        "header_size": header_length,
        "data_size": data_size,
        "tensor_count": len(tensors),
        "parameter_count": parameter_count,
        "dtypes": dtype_counts,
        "tensors": [
            {"name": name, "dtype": dtype, "shape": shape, "data_offsets": [begin, end]}
            for name, dtype, shape, begin, end, _ in tensors[:MAX_LISTED_TENSORS]
        ],
        "tensors_truncated": len(tensors) > MAX_LISTED_TENSORS,
        "metadata": {
            key: value[:MAX_METADATA_VALUE_CHARS]
            for key, value in list(metadata.items())[:MAX_LISTED_METADATA]
        },
        "metadata_truncated": len(metadata) > MAX_LISTED_METADATA
        or any(len(value) > MAX_METADATA_VALUE_CHARS for value in metadata.values()),
    }
    return Report(
        READY,
        f"safetensors: {len(tensors)} tensors, {parameter_count:,} parameters",
        detected_kind="safetensors",
        details=details,
    )


def _check_layout(tensors, data_size: int):
    """Tensors tile the data section: no overlap, no gap, nothing after the last one."""
    expected_begin = 0
    previous = None
    for name, _, _, begin, end, _ in sorted(tensors, key=lambda tensor: (tensor[3], tensor[4])):
        if begin < expected_begin:
            raise _Invalid(f"tensors {previous!r} and {name!r} overlap")
        if begin > expected_begin:
            raise _Invalid(f"{begin - expected_begin} bytes before tensor {name!r} belong to no tensor")
        expected_begin = end
        previous = name
    if expected_begin != data_size:
        raise _Invalid(f"{data_size - expected_begin} bytes at the end of the data section belong to no tensor")
