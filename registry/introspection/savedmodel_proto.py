"""Signatures from a TensorFlow saved_model.pb, read without TensorFlow.

Only the small parts are read: SavedModel.meta_graphs[].meta_info_def (tags, TF version)
and .signature_def (inputs/outputs with dtypes and shapes). graph_def and object_graph_def,
which hold the bulk of the file, are skipped by seeking past them.

Field numbers from tensorflow/core/protobuf/{saved_model,meta_graph}.proto and
tensorflow/core/framework/{tensor_shape,types}.proto.
"""

from registry.introspection import protowire
from registry.introspection.protowire import LEN, VARINT

MAX_SIGNATURES = 200
MAX_FIELDS_PER_SIGNATURE = 2000
MAX_STRING = 64 * 1024

TF_DTYPES = {
    1: "float32", 2: "float64", 3: "int32", 4: "uint8", 5: "int16", 6: "int8", 7: "string", 8: "complex64",
    9: "int64", 10: "bool", 11: "qint8", 12: "quint8", 13: "qint32", 14: "bfloat16", 15: "qint16",
    16: "quint16", 17: "uint16", 18: "complex128", 19: "float16", 20: "resource", 21: "variant",
    22: "uint32", 23: "uint64", 24: "float8_e5m2", 25: "float8_e4m3fn", 29: "int4", 30: "uint4",
}


def _dtype(value: int) -> str:
    if value > 100:  # reference types: DT_FLOAT_REF = 101, ...
        value -= 100
    return TF_DTYPES.get(value, f"tf_type_{value}")


def _shape(source, span) -> list[int]:
    dims, unknown_rank = [], False
    for field in protowire.iter_fields(source, span.start, span.end):
        if field.number == 2 and field.wire_type == LEN:
            size = -1
            for dim_field in protowire.iter_fields(source, field.value.start, field.value.end):
                if dim_field.number == 1 and dim_field.wire_type == VARINT:
                    size = protowire.signed64(dim_field.value)
            dims.append(size if size >= 0 else -1)
        elif field.number == 3 and field.wire_type == VARINT:
            unknown_rank = bool(field.value)
    return [-1] if unknown_rank else dims


def _tensor_info(source, span) -> dict:
    info = {"dtype": "unknown", "shape": [-1]}
    for field in protowire.iter_fields(source, span.start, span.end):
        if field.number == 1 and field.wire_type == LEN:
            info["tensor"] = protowire.read_string(source, field.value, MAX_STRING)
        elif field.number == 2 and field.wire_type == VARINT:
            info["dtype"] = _dtype(field.value)
        elif field.number == 3 and field.wire_type == LEN:
            info["shape"] = _shape(source, field.value)
        elif field.number in (4, 5):
            info["encoding"] = "sparse" if field.number == 4 else "composite"
    return info


def _map_entry(source, span):
    key, value = "", None
    for field in protowire.iter_fields(source, span.start, span.end):
        if field.number == 1 and field.wire_type == LEN:
            key = protowire.read_string(source, field.value, MAX_STRING)
        elif field.number == 2 and field.wire_type == LEN:
            value = field.value
    return key, value


def _signature_def(source, span) -> dict:
    signature = {"inputs": [], "outputs": [], "method_name": ""}
    for field in protowire.iter_fields(source, span.start, span.end):
        if field.number in (1, 2) and field.wire_type == LEN:
            side = signature["inputs" if field.number == 1 else "outputs"]
            if len(side) >= MAX_FIELDS_PER_SIGNATURE:
                raise protowire.ProtoError("signature with too many fields")
            name, info_span = _map_entry(source, field.value)
            info = _tensor_info(source, info_span) if info_span else {"dtype": "unknown", "shape": [-1]}
            side.append({"name": name, **info})
        elif field.number == 3 and field.wire_type == LEN:
            signature["method_name"] = protowire.read_string(source, field.value, MAX_STRING)
    return signature


def _meta_graph(source, span) -> dict:
    meta_graph = {"tags": [], "tensorflow_version": None, "signatures": {}}
    for field in protowire.iter_fields(source, span.start, span.end):
        if field.number == 1 and field.wire_type == LEN:
            for info_field in protowire.iter_fields(source, field.value.start, field.value.end):
                if info_field.number == 4 and info_field.wire_type == LEN:
                    meta_graph["tags"].append(protowire.read_string(source, info_field.value, MAX_STRING))
                elif info_field.number == 5 and info_field.wire_type == LEN:
                    meta_graph["tensorflow_version"] = protowire.read_string(source, info_field.value, MAX_STRING)
        elif field.number == 5 and field.wire_type == LEN:
            if len(meta_graph["signatures"]) >= MAX_SIGNATURES:
                raise protowire.ProtoError("too many signatures")
            name, signature_span = _map_entry(source, field.value)
            meta_graph["signatures"][name] = (
                _signature_def(source, signature_span) if signature_span else {"inputs": [], "outputs": []}
            )
    return meta_graph


def read_saved_model(fileobj) -> dict:
    """{"schema_version", "meta_graphs": [{tags, tensorflow_version, signatures}]}; raises ProtoError."""
    source = protowire.Source(fileobj)
    result = {"schema_version": None, "meta_graphs": []}
    for field in protowire.iter_fields(source):
        if field.number == 1 and field.wire_type == VARINT:
            result["schema_version"] = field.value
        elif field.number == 2 and field.wire_type == LEN:
            result["meta_graphs"].append(_meta_graph(source, field.value))
    if not result["meta_graphs"]:
        raise protowire.ProtoError("no meta graph")
    return result


def serving_signature(saved_model: dict) -> tuple[str | None, dict | None]:
    """(name, {"inputs", "outputs"}) of the signature a server would use by default."""
    meta_graphs = saved_model["meta_graphs"]
    meta_graph = next((graph for graph in meta_graphs if "serve" in graph["tags"]), meta_graphs[0])
    signatures = {name: value for name, value in meta_graph["signatures"].items() if not name.startswith("__")}
    if not signatures:
        return None, None
    name = "serving_default" if "serving_default" in signatures else next(iter(signatures))
    chosen = signatures[name]

    def fields(side):
        return [{"name": item["name"], "dtype": item["dtype"], "shape": item["shape"]} for item in chosen[side]]

    return name, {"inputs": fields("inputs"), "outputs": fields("outputs")}
