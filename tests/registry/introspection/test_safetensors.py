import io
import json
import struct

import numpy as np
import pytest
from safetensors.numpy import save as safetensors_save

from registry.introspection.report import FAILED, READY
from registry.introspection.safetensors_file import MAX_LISTED_TENSORS, inspect_safetensors
from tests.registry.introspection.sandbox import BENIGN_PICKLE, sandbox  # noqa: F401 (fixture)


def build(header, data: bytes = b"", *, raw_header: bytes | None = None, length: int | None = None) -> bytes:
    encoded = raw_header if raw_header is not None else json.dumps(header).encode()
    return struct.pack("<Q", len(encoded) if length is None else length) + encoded + data


def inspect(data: bytes):
    return inspect_safetensors(io.BytesIO(data), len(data))


def test_a_file_written_by_the_reference_library_is_read(sandbox):
    data = safetensors_save(
        {"embedding.weight": np.zeros((10, 4), dtype=np.float32), "head.bias": np.ones(3, dtype=np.float16),
         "step": np.array(7, dtype=np.int64)},
        metadata={"format": "pt", "author": "tests"},
    )
    report = inspect(data)
    assert report.status == READY, report.message
    assert report.detected_kind == "safetensors"
    assert report.details["tensor_count"] == 3
    assert report.details["parameter_count"] == 40 + 3 + 1
    assert report.details["metadata"] == {"format": "pt", "author": "tests"}
    assert report.details["dtypes"] == {"F32": 1, "F16": 1, "I64": 1}
    listed = {tensor["name"]: tensor for tensor in report.details["tensors"]}
    assert listed["embedding.weight"]["shape"] == [10, 4]
    assert listed["step"]["shape"] == []
    assert report.signature is None
    assert "44 parameters" in report.message


def test_the_data_section_is_never_read(sandbox):
    data = safetensors_save({"w": np.zeros((256, 256), dtype=np.float32)})

    class CountingFile(io.BytesIO):
        read_bytes = 0

        def read(self, size=-1):
            chunk = super().read(size)
            CountingFile.read_bytes += len(chunk)
            return chunk

    report = inspect_safetensors(CountingFile(data), len(data))
    assert report.status == READY
    assert CountingFile.read_bytes < 1000 < len(data)


def tensor(dtype, shape, begin, end):
    return {"dtype": dtype, "shape": shape, "data_offsets": [begin, end]}


@pytest.mark.parametrize("data, reason", [
    (b"", "too short"),
    (b"\x01\x00\x00", "too short"),
    (build({}, length=0), "header length is 0"),
    (build({"a": tensor("F32", [1], 0, 4)}, b"\x00" * 4, length=10**6), "runs past the end of the file"),
    (struct.pack("<Q", 2**63) + b"{}", "larger than"),
    (build(None, raw_header=b"{not json"), "not valid JSON"),
    (build(None, raw_header=b'{"a": 1,}'), "not valid JSON"),
    (build(None, raw_header=b"\xff\xfe{}"), "not UTF-8"),
    (build(None, raw_header=b'  {"__metadata__": {}}'), "does not start with '{'"),
    (build(None, raw_header=b"[1, 2]"), "does not start"),
    (build(None, raw_header=b'{"a": NaN}'), "NaN"),
    (build(None, raw_header=b'{"a":' + b"[" * 100000 + b"]" * 100000 + b"}"), "nested too deeply"),
    (build(None, raw_header=b'{"a": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]},'
                             b' "a": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}}') + b"\x00" * 4,
     "names 'a' twice"),
    (build({"a": tensor("F32", [2], 0, 8)}, b"\x00" * 4), "outside the data section"),
    (build({"a": tensor("F32", [1], 4, 0)}, b"\x00" * 4), "is after end"),
    (build({"a": tensor("F32", [2], 0, 4)}, b"\x00" * 4), "needs 8"),
    (build({"a": tensor("F32", [1], 0, 4), "b": tensor("F32", [1], 2, 6)}, b"\x00" * 8), "overlap"),
    (build({"a": tensor("F32", [1], 0, 4), "b": tensor("F32", [1], 0, 4)}, b"\x00" * 4), "overlap"),
    (build({"a": tensor("F32", [1], 4, 8)}, b"\x00" * 8), "4 bytes before tensor 'a'"),
    (build({"a": tensor("F32", [1], 0, 4)}, b"\x00" * 12),
     "8 bytes at the end"),
    (build({"a": tensor("Q99", [1], 0, 4)}, b"\x00" * 4), "unknown dtype"),
    (build({"a": tensor("F32", [-1], 0, 4)}, b"\x00" * 4), "non-negative integers"),
    (build({"a": tensor("F32", [True], 0, 1)}, b"\x00"), "non-negative integers"),
    (build({"a": {"dtype": "F32", "shape": [1], "data_offsets": [0]}}, b"\x00" * 4), "two non-negative"),
    (build({"a": [1, 2]}), "entry is not an object"),
    (build({"__metadata__": {"k": 1}}), "not a string"),
    (build({"__metadata__": ["k"]}), "not an object"),
    (build({"a": tensor("F4", [3], 0, 2)}, b"\x00" * 2), "whole bytes"),
])
def test_invalid_files_fail_with_the_precise_reason(sandbox, data, reason):
    report = inspect(data)
    assert report.status == FAILED
    assert reason in report.message



def test_a_pickle_is_not_a_safetensors_file(sandbox):
    report = inspect(BENIGN_PICKLE)
    assert report.status == FAILED


def test_header_length_just_inside_the_file_is_accepted(sandbox):
    report = inspect(build({}))
    assert report.status == READY
    assert report.details["tensor_count"] == 0


def test_sub_byte_and_zero_sized_tensors(sandbox):
    data = build({"packed": tensor("F4", [4], 0, 2), "empty": tensor("F32", [0, 5], 2, 2),
                  "also_empty": tensor("I8", [0], 2, 2)}, b"\x00\x00")
    report = inspect(data)
    assert report.status == READY, report.message
    assert report.details["parameter_count"] == 4


def test_tensor_listing_is_capped(sandbox):
    count = MAX_LISTED_TENSORS + 500
    header = {f"t{index}": tensor("U8", [1], index, index + 1) for index in range(count)}
    report = inspect(build(header, b"\x00" * count))
    assert report.status == READY
    assert report.details["tensor_count"] == count
    assert len(report.details["tensors"]) == MAX_LISTED_TENSORS
    assert report.details["tensors_truncated"] is True
    assert report.details["parameter_count"] == count


def test_long_metadata_values_are_truncated_in_the_report(sandbox):
    report = inspect(build({"__metadata__": {"notes": "x" * 50_000}}))
    assert report.status == READY
    assert len(report.details["metadata"]["notes"]) == 2000
    assert report.details["metadata_truncated"] is True


def test_report_is_json_serialisable(sandbox):
    data = safetensors_save({"w": np.zeros(3, dtype=np.float64)})
    json.dumps(inspect(data).as_dict())
