import builtins
import io
import json
import os

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from registry.introspection import onnx_model
from registry.introspection.onnx_model import external_location_problem, inspect_onnx
from registry.introspection.report import FAILED, QUARANTINED, READY
from tests.registry.introspection.sandbox import BENIGN_PICKLE, sandbox, zip_bytes  # noqa: F401 (fixture)


def gemm_model(*, weights=None, initializer_as_input=False, ir_version=None) -> onnx.ModelProto:
    weights = np.ones((4, 3), dtype=np.float32) if weights is None else weights
    inputs = [helper.make_tensor_value_info("X", TensorProto.FLOAT, ["batch", weights.shape[0]])]
    if initializer_as_input:
        inputs.append(helper.make_tensor_value_info("W", TensorProto.FLOAT, list(weights.shape)))
        inputs.append(helper.make_tensor_value_info("B", TensorProto.FLOAT, [weights.shape[1]]))
    graph = helper.make_graph(
        [helper.make_node("Gemm", ["X", "W", "B"], ["Y"])],
        "tiny_gemm",
        inputs,
        [helper.make_tensor_value_info("Y", TensorProto.FLOAT, ["batch", weights.shape[1]])],
        initializer=[numpy_helper.from_array(weights, "W"),
                     numpy_helper.from_array(np.zeros(weights.shape[1], dtype=np.float32), "B")],
    )
    model = helper.make_model(graph, producer_name="registry-tests", producer_version="1.0",
                              opset_imports=[helper.make_opsetid("", 8 if ir_version == 3 else 17)])
    if ir_version:
        model.ir_version = ir_version
    model.metadata_props.add(key="author", value="tests")
    onnx.checker.check_model(model)
    return model


def add_model() -> onnx.ModelProto:
    graph = helper.make_graph(
        [helper.make_node("Add", ["a", "b"], ["sum"])],
        "adder",
        [helper.make_tensor_value_info("a", TensorProto.INT64, [None, 2]),
         helper.make_tensor_value_info("b", TensorProto.INT64, [1, 2])],
        [helper.make_tensor_value_info("sum", TensorProto.INT64, None)],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 14)])


def inspect(model_or_bytes):
    data = model_or_bytes if isinstance(model_or_bytes, bytes) else model_or_bytes.SerializeToString()
    return inspect_onnx(io.BytesIO(data))


def with_external_weights(location: str) -> onnx.ModelProto:
    model = gemm_model()
    weights = model.graph.initializer[0]
    weights.ClearField("raw_data")
    weights.data_location = TensorProto.EXTERNAL
    for key, value in (("location", location), ("offset", "0"), ("length", "48")):
        weights.external_data.add(key=key, value=value)
    return model


def test_a_gemm_model_gives_its_signature(sandbox):
    report = inspect(gemm_model())
    assert report.status == READY, report.message
    assert report.detected_kind == "onnx"
    assert report.signature == {
        "inputs": [{"name": "X", "dtype": "float32", "shape": [-1, 4]}],
        "outputs": [{"name": "Y", "dtype": "float32", "shape": [-1, 3]}],
    }
    details = report.details
    assert details["opset_imports"] == [{"domain": "ai.onnx", "version": 17}]
    assert details["producer_name"] == "registry-tests"
    assert details["producer_version"] == "1.0"
    assert details["ir_version"] == gemm_model().ir_version
    assert details["op_types"] == {"Gemm": 1}
    assert details["metadata"] == {"author": "tests"}
    assert details["inputs"][0]["dims"] == ["batch", 4]
    assert details["inline_weight_bytes"] == 4 * 3 * 4 + 3 * 4
    json.dumps(report.as_dict())


def test_initializers_listed_as_inputs_are_not_part_of_the_signature(sandbox):
    report = inspect(gemm_model(initializer_as_input=True, ir_version=3))
    assert [field["name"] for field in report.signature["inputs"]] == ["X"]


def test_int_inputs_unknown_dims_and_unknown_rank(sandbox):
    report = inspect(add_model())
    assert report.status == READY
    assert report.signature == {
        "inputs": [{"name": "a", "dtype": "int64", "shape": [-1, 2]},
                   {"name": "b", "dtype": "int64", "shape": [1, 2]}],
        "outputs": [{"name": "sum", "dtype": "int64", "shape": [-1]}],
    }


def test_sequence_and_map_outputs_are_described(sandbox):
    graph = helper.make_graph(
        [helper.make_node("Identity", ["x"], ["y"])], "g",
        [helper.make_tensor_value_info("x", TensorProto.STRING, [None])],
        [helper.make_value_info("probabilities", helper.make_sequence_type_proto(
            helper.make_map_type_proto(TensorProto.INT64, helper.make_tensor_type_proto(TensorProto.FLOAT, []))))],
    )
    report = inspect(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]))
    assert report.signature["inputs"] == [{"name": "x", "dtype": "string", "shape": [-1]}]
    assert report.signature["outputs"] == [{"name": "probabilities", "dtype": "sequence<map<int64,float32>>",
                                            "shape": [-1]}]


def test_the_skeleton_is_the_model_without_weights(sandbox):
    model = gemm_model(weights=np.random.rand(64, 32).astype(np.float32))
    data = model.SerializeToString()
    skeleton = onnx_model._Skeleton(10**6)
    rebuilt = onnx.load_model_from_string(skeleton.rewrite(onnx_model.protowire.Source(data), "model", 0, len(data)))
    for tensor in model.graph.initializer:
        tensor.ClearField("raw_data")
    assert rebuilt == model


def test_large_inline_weights_are_never_held_in_memory(sandbox, monkeypatch):
    weights = np.random.rand(1024, 1024).astype(np.float32)  # 4 MiB of weights
    monkeypatch.setattr(onnx_model, "MAX_SKELETON_BYTES", 64 * 1024)
    report = inspect(gemm_model(weights=weights))
    assert report.status == READY, report.message
    assert report.details["inline_weight_bytes"] >= weights.nbytes


def test_a_graph_structure_over_the_limit_fails(sandbox, monkeypatch):
    monkeypatch.setattr(onnx_model, "MAX_SKELETON_BYTES", 10)
    model = gemm_model()
    model.doc_string = "x" * 1000
    report = inspect(model)
    assert report.status == FAILED
    assert "larger than 10 bytes" in report.message


def test_files_over_the_protobuf_limit_fail_without_being_read(sandbox, monkeypatch):
    monkeypatch.setattr(onnx_model, "PROTOBUF_LIMIT", 100)
    report = inspect(gemm_model())
    assert report.status == FAILED
    assert "2 GiB protobuf limit" in report.message


@pytest.mark.parametrize("location", [
    "../../etc/passwd", "weights/../../../etc/passwd", "..\\..\\windows\\system.ini",
    "/etc/passwd", "\\\\server\\share\\weights.bin", "C:\\weights.bin",
])
def test_external_data_outside_the_model_directory_is_quarantined(sandbox, monkeypatch, location):
    opened = []
    real_open = builtins.open

    def watching_open(file, *args, **kwargs):
        opened.append(str(file))
        return real_open(file, *args, **kwargs)

    monkeypatch.setattr(builtins, "open", watching_open)
    report = inspect(with_external_weights(location))
    assert report.status == QUARANTINED
    assert repr(location) in report.message
    assert report.details["external_data"][0]["location"] == location
    assert report.details["external_data"][0]["unsafe"]
    assert not any("passwd" in path or "weights" in path for path in opened)
    assert "root:" not in json.dumps(report.as_dict())


def test_safe_external_data_is_listed_and_left_alone(sandbox):
    report = inspect(with_external_weights("weights.bin"))
    assert report.status == READY, report.message
    assert report.details["external_data"] == [{"tensor": "W", "location": "weights.bin", "offset": 0,
                                                "length": 48}]
    assert "external files (weights.bin)" in report.message
    assert report.details["external_data_note"]


def test_external_data_in_a_subgraph_is_found(sandbox):
    tensor = numpy_helper.from_array(np.zeros(2, dtype=np.float32), "hidden")
    tensor.ClearField("raw_data")
    tensor.data_location = TensorProto.EXTERNAL
    tensor.external_data.add(key="location", value="/root/.ssh/id_rsa")
    branch = helper.make_graph([helper.make_node("Constant", [], ["out"], value=tensor)], "then", [],
                               [helper.make_tensor_value_info("out", TensorProto.FLOAT, [2])])
    other = helper.make_graph([helper.make_node("Constant", [], ["out2"],
                                                value=numpy_helper.from_array(np.ones(2, dtype=np.float32)))],
                              "else", [], [helper.make_tensor_value_info("out2", TensorProto.FLOAT, [2])])
    graph = helper.make_graph(
        [helper.make_node("If", ["condition"], ["result"], then_branch=branch, else_branch=other)], "g",
        [helper.make_tensor_value_info("condition", TensorProto.BOOL, [])],
        [helper.make_tensor_value_info("result", TensorProto.FLOAT, [2])],
    )
    report = inspect(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]))
    assert report.status == QUARANTINED
    assert "/root/.ssh/id_rsa" in report.message


def test_external_data_without_a_location_fails(sandbox):
    model = with_external_weights("weights.bin")
    del model.graph.initializer[0].external_data[:]
    model.graph.initializer[0].external_data.add(key="offset", value="0")
    report = inspect(model)
    assert report.status == FAILED
    assert "without a location" in report.message


@pytest.mark.parametrize("location, problem", [
    ("weights.bin", None), ("data/weights.bin", None), ("a..b", None),
    ("", "empty location"), ("../w", "escapes"), ("/w", "absolute"), ("D:w", "drive letter"),
])
def test_external_location_problem(location, problem):
    found = external_location_problem(location)
    assert (found is None) if problem is None else (problem in found)


@pytest.mark.parametrize("data, reason", [
    (b"", "empty"),
    (BENIGN_PICKLE, "a pickle"),
    (zip_bytes({"model.onnx": b"x"}), "zip"),
    (b"\x08\x07\x12\xff\xff\xff\x0f", "not a valid ONNX protobuf"),
    (b"\x08\x07\x3a\x05\x0a\x03", "not a valid ONNX protobuf"),
    (b"\x0f\x0f\x0f\x0f", "not a valid ONNX protobuf"),
    (b"\x08\x07", "no graph"),
])
def test_garbage_and_other_kinds_fail(sandbox, data, reason):
    report = inspect(data)
    assert report.status == FAILED
    assert reason in report.message


def test_a_truncated_model_fails(sandbox):
    data = gemm_model().SerializeToString()
    report = inspect(data[: len(data) // 2])
    assert report.status == FAILED


def test_the_model_is_read_from_a_real_file(sandbox, tmp_path):
    path = tmp_path / "model.onnx"
    onnx.save(gemm_model(), str(path))
    with open(path, "rb") as handle:
        report = inspect_onnx(handle)
    assert report.status == READY
    os.remove(path)


def test_a_flood_of_tiny_fields_is_cut_short(sandbox, monkeypatch):
    monkeypatch.setattr(onnx_model, "MAX_FIELDS", 1000)
    data = gemm_model().SerializeToString() + b"\x28\x01" * 5000  # model_version, repeated
    report = inspect(data)
    assert report.status == FAILED
    assert "more than 1000 protobuf fields" in report.message


def test_scalar_fields_count_towards_the_skeleton_limit(sandbox, monkeypatch):
    monkeypatch.setattr(onnx_model, "MAX_SKELETON_BYTES", 5000)
    data = gemm_model().SerializeToString() + b"\x28\x01" * 5000
    report = inspect(data)
    assert report.status == FAILED
    assert "larger than 5000 bytes" in report.message


def test_counted_nouns_read_in_the_singular_for_one():
    from registry.introspection.report import counted

    assert counted(1, "input") == "1 input"
    assert counted(2, "input") == "2 inputs"
    assert counted(0, "output") == "0 outputs"
    assert counted(1, "active field") == "1 active field"
