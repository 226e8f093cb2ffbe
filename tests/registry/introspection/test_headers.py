import bz2
import gzip
import io
import json
import lzma
import pickle
import struct
import zlib

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper
from safetensors.numpy import save as safetensors_save

from registry.introspection.headers import (
    detect_kind,
    inspect_h5,
    inspect_other,
    inspect_rda,
    kind_contradiction,
)
from registry.introspection.report import FAILED, QUARANTINED, READY
from tests.registry.introspection.sandbox import (  # noqa: F401 (fixture)
    BENIGN_PICKLE,
    MALICIOUS_PICKLE,
    RUNTIME_YAML,
    RecordingScanner,
    sandbox,
    zip_bytes,
)

HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"


def hdf5_v0(user_block: int = 0) -> bytes:
    # signature, version 0, free-space 0, root group 0, reserved, shared header 0, offsets 8, lengths 8
    superblock = HDF5_SIGNATURE + bytes([0, 0, 0, 0, 0, 8, 8, 0]) + b"\x00" * 80
    return b"\x00" * user_block + superblock + b'keras_version\x00model_config\x00{"class_name": "Sequential"}'


def hdf5_v2() -> bytes:
    return HDF5_SIGNATURE + bytes([2, 8, 8, 0]) + b"\x00" * 60


def r_xdr(version: int = 3) -> bytes:
    header = b"X\n" + struct.pack(">III", version, 0x040302, 0x030500)
    if version == 3:
        header += struct.pack(">I", 5) + b"UTF-8"
    return header + b"\x00\x00\x04\x02" + b"\x00" * 32


def rdata(compress=gzip.compress) -> bytes:
    data = b"RDX3\n" + r_xdr()
    return compress(data) if compress else data


def onnx_bytes() -> bytes:
    graph = helper.make_graph([helper.make_node("Relu", ["x"], ["y"])], "g",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1])])
    return helper.make_model(graph, producer_name="pytorch", opset_imports=[helper.make_opsetid("", 17)]) \
        .SerializeToString()


def torch_zip() -> bytes:
    return zip_bytes({"archive/data.pkl": BENIGN_PICKLE, "archive/version": b"3\n", "archive/data/0": b"\x00" * 8},
                     compression=0)


@pytest.mark.parametrize("data, kind", [
    (pickle.dumps({"a": 1}, protocol=2), "pkl"),
    (pickle.dumps({"a": 1}, protocol=4), "pkl"),
    (pickle.dumps({"a": 1}, protocol=5), "pkl"),
    (pickle.dumps({"a": [1, 2]}, protocol=0), "pkl"),
    (pickle.dumps([1, 2], protocol=1), "pkl"),
    (MALICIOUS_PICKLE, "pkl"),
    (zlib.compress(pickle.dumps({"a": 1}, protocol=4)), "joblib"),
    (gzip.compress(pickle.dumps({"a": 1}, protocol=4)), "joblib"),
    (lzma.compress(pickle.dumps({"a": 1}, protocol=4)), "joblib"),
    (torch_zip(), "pt"),
    (zip_bytes({"saved_model/saved_model.pb": b"\x08\x01", "saved_model/variables/variables.index": b""}),
     "savedmodel"),
    (zip_bytes({"model/runtime.yaml": RUNTIME_YAML, "model/score.py": b"def predict(data): pass"}), "artifact"),
    (zip_bytes({"notes.txt": b"hello"}), "zip"),
    (hdf5_v0(), "h5"),
    (hdf5_v0(user_block=512), "h5"),
    (hdf5_v2(), "h5"),
    (rdata(), "rda"),
    (rdata(bz2.compress), "rda"),
    (rdata(lzma.compress), "rda"),
    (rdata(None), "rda"),
    (gzip.compress(r_xdr()), "rda"),
    (safetensors_save({"w": np.zeros(3, dtype=np.float32)}), "safetensors"),
    (onnx_bytes(), "onnx"),
    (b'<?xml version="1.0"?>\n<PMML xmlns="http://www.dmg.org/PMML-4_4" version="4.4"></PMML>', "pmml"),
    (b'\xef\xbb\xbf<pmml:PMML xmlns:pmml="http://www.dmg.org/PMML-4_4" version="4.4"/>', "pmml"),
    ('<?xml version="1.0" encoding="UTF-16"?><PMML version="4.4"/>'.encode("utf-16"), "pmml"),
    (b"<?xml version='1.0'?><html/>", "xml"),
    (b"", None),
    (b"just some text.", None),
    (b"Some sentence (with parentheses).", None),
    (json.dumps({"a": 1}).encode(), None),
    (gzip.compress(b"plain text"), None),
    (bytes(range(256)) * 10, None),
])
def test_detect_kind(sandbox, data, kind):
    fileobj = io.BytesIO(data)
    fileobj.seek(3 if data else 0)
    assert detect_kind(fileobj) == kind
    assert fileobj.tell() == (3 if data else 0), "detect_kind must leave the position alone"


def test_detect_kind_bounds_decompression(sandbox):
    bomb = gzip.compress(b"RDX3\n" + r_xdr() + bytes(50 * 1024 * 1024))
    assert detect_kind(io.BytesIO(bomb)) == "rda"


@pytest.mark.parametrize("declared, detected, contradicts", [
    ("pkl", "pkl", False), ("pkl", None, False), ("pkl", "zip", True), ("joblib", "joblib", False),
    ("pt", "pt", False), ("pt", "pkl", False), ("onnx", None, False), ("onnx", "pkl", True),
    ("pmml", "xml", True), ("safetensors", None, True), ("h5", "rda", True), ("rda", "rda", False),
    ("artifact", "zip", False), ("artifact", "savedmodel", False), ("artifact", "pkl", True),
    ("savedmodel", "pkl", True), ("other", "pkl", False),
])
def test_kind_contradiction(declared, detected, contradicts):
    message = kind_contradiction(declared, detected)
    assert (message is not None) == contradicts
    if contradicts:
        assert declared in message


def test_inspect_h5_reads_the_superblock(sandbox):
    report = inspect_h5(io.BytesIO(hdf5_v0(user_block=1024)))
    assert report.status == READY, report.message
    assert report.details["superblock_version"] == 0
    assert report.details["user_block_size"] == 1024
    assert report.details["offset_size"] == 8
    assert report.details["keras_markers"] == ["keras_version", "model_config"]
    report = inspect_h5(io.BytesIO(hdf5_v2()))
    assert report.status == READY
    assert report.details["superblock_version"] == 2


@pytest.mark.parametrize("data, reason", [
    (MALICIOUS_PICKLE, "a pickle"),
    (b"", "no HDF5 signature"),
    (HDF5_SIGNATURE + b"\x09" + b"\x00" * 20, "unknown HDF5 superblock version 9"),
    (HDF5_SIGNATURE + b"\x02", "truncated"),
    (HDF5_SIGNATURE + bytes([2, 3, 8, 0]) + b"\x00" * 20, "invalid offset"),
])
def test_inspect_h5_fails_on_contradicting_content(sandbox, data, reason):
    report = inspect_h5(io.BytesIO(data))
    assert report.status == FAILED
    assert reason in report.message


@pytest.mark.parametrize("compress, compression", [
    (gzip.compress, "gzip"), (bz2.compress, "bzip2"), (lzma.compress, "xz"), (None, "none"),
])
def test_inspect_rda_reads_the_serialization_header(sandbox, compress, compression):
    report = inspect_rda(io.BytesIO(rdata(compress)))
    assert report.status == READY, report.message
    assert report.details == {
        "compression": compression, "container": "rdata", "rdata_format": "RDX3", "serialization": "xdr",
        "format_version": 3, "written_by_r": "4.3.2", "minimum_r": "3.5.0", "native_encoding": "UTF-8",
    }


def test_inspect_rda_reads_rds_and_version_2(sandbox):
    report = inspect_rda(io.BytesIO(gzip.compress(r_xdr(version=2))))
    assert report.status == READY
    assert report.details["container"] == "rds"
    assert report.details["format_version"] == 2


@pytest.mark.parametrize("data, reason", [
    (BENIGN_PICKLE, "a pickle"),
    (gzip.compress(b"not R at all"), "no RDX/RDA header"),
    (b"RDX3\nX\n\x00\x00", "truncated"),
    (b"RDX3\nX\n" + struct.pack(">III", 9, 0, 0), "unknown R serialization version 9"),
    (b"RDX3\nZ\n", "unknown serialization format"),
])
def test_inspect_rda_fails_on_contradicting_content(sandbox, data, reason):
    report = inspect_rda(io.BytesIO(data))
    assert report.status == FAILED
    assert reason in report.message


def test_inspect_other_refuses_pickles_so_they_cannot_skip_the_scanner(sandbox):
    for data, kind in ((MALICIOUS_PICKLE, "pkl"), (gzip.compress(BENIGN_PICKLE), "joblib"), (torch_zip(), "pt")):
        report = inspect_other(io.BytesIO(data))
        assert report.status == FAILED
        assert report.detected_kind == kind
        assert f"kind '{kind}'" in report.message


def test_inspect_other_accepts_opaque_data_and_names_known_kinds(sandbox):
    report = inspect_other(io.BytesIO(b"vocabulary\nwords\n"))
    assert report.status == READY
    assert report.detected_kind is None
    report = inspect_other(io.BytesIO(onnx_bytes()))
    assert report.status == READY
    assert report.detected_kind == "onnx"
    assert "kind 'onnx'" in report.message


def test_inspect_other_checks_a_zip_and_the_pickles_inside(sandbox):
    scanner = RecordingScanner()
    report = inspect_other(io.BytesIO(zip_bytes({"tokenizer.json": b"{}", "extra/state.pkl": MALICIOUS_PICKLE})),
                           scan_serialized=scanner)
    assert report.status == QUARANTINED
    assert scanner.calls == [("pkl", MALICIOUS_PICKLE)]
    assert "extra/state.pkl" in report.message
    report = inspect_other(io.BytesIO(zip_bytes({"../evil": b"x"})))
    assert report.status == QUARANTINED


def test_inspect_other_finds_a_pickle_hidden_in_a_zip_member(sandbox):
    data = zip_bytes({"tokenizer.json": b"{}", "README": b"N0" + MALICIOUS_PICKLE})
    report = inspect_other(io.BytesIO(data), scan_serialized=RecordingScanner())
    assert report.status == QUARANTINED
    assert "README" in report.message


def test_inspect_other_refuses_model_zips(sandbox):
    data = zip_bytes({"runtime.yaml": RUNTIME_YAML, "score.py": b""})
    report = inspect_other(io.BytesIO(data))
    assert report.status == FAILED
    assert "kind 'artifact'" in report.message


def test_onnx_detection_survives_a_large_model(sandbox):
    graph = helper.make_graph([], "g", [], [], initializer=[
        helper.make_tensor("w", TensorProto.FLOAT, [300_000], np.zeros(300_000, dtype=np.float32).tobytes(), raw=True)])
    data = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]).SerializeToString()
    assert len(data) > 1_000_000
    assert detect_kind(io.BytesIO(data)) == "onnx"
    assert onnx.load_model_from_string(data).graph.name == "g"


# --- Keras layers that carry code ---------------------------------------------------------------

KERAS_LAMBDA_CONFIG = (b'{"class_name": "Sequential", "config": {"layers": [{"class_name": "Lambda", "config": '
                       b'{"function": ["4wEAAAAAAAAA", null, null], "function_type": "lambda"}}]}}')


def _h5_with_attribute(text: bytes) -> bytes:
    # An HDF5 signature and superblock (version 0, 8-byte offsets and lengths), then the bytes
    # where HDF5 would keep the model_config attribute.
    superblock = b"\x89HDF\r\n\x1a\n" + bytes([0, 0, 0, 0, 0, 8, 8, 0]) + b"\x00" * 48
    return superblock + b"\x00" * 4000 + b"model_config\x00" + text + b"\x00" * 100


def test_a_keras_h5_with_a_lambda_layer_is_quarantined():
    report = inspect_h5(io.BytesIO(_h5_with_attribute(KERAS_LAMBDA_CONFIG)))

    assert report.status == QUARANTINED
    assert "Lambda" in report.message


def test_a_keras_h5_without_code_layers_is_ready():
    config = KERAS_LAMBDA_CONFIG.replace(b'"Lambda"', b'"Dense"')

    assert inspect_h5(io.BytesIO(_h5_with_attribute(config))).status == READY


def test_a_keras_zip_whose_config_has_a_lambda_layer_is_quarantined():
    from registry.introspection.artifact import inspect_zip

    data = zip_bytes({"config.json": KERAS_LAMBDA_CONFIG.replace(b": ", b":"), "metadata.json": b"{}",
                      "model.weights.h5": _h5_with_attribute(b"{}")})

    report = inspect_zip(io.BytesIO(data))

    assert report.status == QUARANTINED
    assert "config.json" in report.message and "Lambda" in report.message
