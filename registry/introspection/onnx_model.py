"""ONNX: opsets, producer, graph inputs/outputs (the signature) and external data paths.

Memory: a model with inline weights can be close to 2 GiB, and onnx.load would hold all of
it (twice, while parsing). Instead the file is walked field by field and a *skeleton* is
built: the same ModelProto with every tensor's payload fields (raw_data, float_data, ...)
left out and everything else copied. The skeleton (graph structure, names, types, external
data references) is small, and the onnx library parses that, with load_external_data off:
external data files are never opened. A file larger than 2 GiB cannot be a valid
single-file ONNX model (the protobuf limit; such models must keep weights as external
data) and is FAILED with that reason; a skeleton over MAX_SKELETON_BYTES is FAILED too.

External data: every referenced location is listed. A location that is absolute, has a
drive letter, or climbs out of the model's directory ("..") would make a consumer's loader
read an arbitrary file (say /etc/passwd) into the model: the format is QUARANTINED. Safe
references leave the format READY, with a note that the weights are not in this file.
"""

import io
import re

import onnx
from google.protobuf.message import DecodeError

from registry.introspection import protowire
from registry.introspection.headers import KIND_LABELS, detect_kind
from registry.introspection.report import FAILED, QUARANTINED, READY, Report, counted

PROTOBUF_LIMIT = 2 * 1024**3
MAX_SKELETON_BYTES = 256 * 1024 * 1024
MAX_NESTING = 64
# Every protobuf field costs a loop iteration; a crafted file of billions of tiny fields would
# tie up a worker. Real models (packed or raw tensor data) stay far below this.
MAX_FIELDS = 20_000_000
IN_MEMORY_CHILD_BYTES = 64 * 1024
MAX_LISTED = 1000
EXTERNAL = 1  # TensorProto.DataLocation.EXTERNAL

# Which length-delimited fields hold messages that can (transitively) contain tensors.
_CHILDREN = {
    "model": {7: "graph", 20: "training", 25: "function"},
    "graph": {1: "node", 5: "tensor", 15: "sparse"},
    "node": {5: "attribute"},
    "attribute": {5: "tensor", 6: "graph", 10: "tensor", 11: "graph", 22: "sparse", 23: "sparse"},
    "sparse": {1: "tensor", 2: "tensor"},
    "training": {1: "graph", 2: "graph"},
    "function": {7: "node", 11: "attribute"},
    "tensor": {},
}
# TensorProto fields that carry element data: float_data, int32_data, string_data,
# int64_data, raw_data, double_data, uint64_data.
_TENSOR_PAYLOAD = {4, 5, 6, 7, 9, 10, 11}
_STRONG_OTHER_KINDS = {"pkl", "joblib", "pt", "zip", "savedmodel", "artifact", "h5", "rda", "safetensors",
                       "pmml", "xml"}
_DTYPE_OVERRIDES = {"FLOAT": "float32", "DOUBLE": "float64", "UNDEFINED": "unknown"}


class _TooLarge(Exception):
    pass


class _Skeleton:
    def __init__(self, max_bytes: int):
        self.max_bytes = max_bytes
        self.kept = 0
        self.fields = 0
        self.stripped_bytes = 0

    def _spend(self, count: int):
        self.kept += count
        if self.kept > self.max_bytes:
            raise _TooLarge

    def _keep(self, source, span) -> bytes:
        self._spend(span.length)
        return protowire.read_span(source, span, self.max_bytes)

    def rewrite(self, source, message: str, start: int, end: int, depth: int = 0) -> bytes:
        if depth > MAX_NESTING:
            raise protowire.ProtoError("messages nested too deeply")
        children = _CHILDREN[message]
        out = bytearray()
        for field in protowire.iter_fields(source, start, end):
            self.fields += 1
            if self.fields > MAX_FIELDS:
                raise protowire.ProtoError(f"more than {MAX_FIELDS} protobuf fields")
            if message == "tensor" and field.number in _TENSOR_PAYLOAD:
                if field.wire_type == protowire.LEN:
                    self.stripped_bytes += field.value.length
                continue
            child = children.get(field.number)
            if field.wire_type != protowire.LEN:
                if child:
                    raise protowire.ProtoError(f"field {field.number} of a {message} is not a message")
                encoded = protowire.encode_scalar_field(field)
                self._spend(len(encoded))
                out += encoded
                continue
            if child is None:
                payload = self._keep(source, field.value)
            elif field.value.length <= IN_MEMORY_CHILD_BYTES and not isinstance(source, _BytesSource):
                # Small messages (nodes, attributes) are parsed from memory: far fewer reads.
                in_memory = _BytesSource(protowire.read_span(source, field.value, IN_MEMORY_CHILD_BYTES))
                payload = self.rewrite(in_memory, child, 0, field.value.length, depth + 1)
            else:
                payload = self.rewrite(source, child, field.value.start, field.value.end, depth + 1)
            out += protowire.encode_len_field(field.number, payload)
        return bytes(out)


class _BytesSource(protowire.Source):
    pass


def _dtype_name(elem_type: int) -> str:
    try:
        name = onnx.TensorProto.DataType.Name(elem_type)
    except ValueError:
        return f"onnx_type_{elem_type}"
    return _DTYPE_OVERRIDES.get(name, name.lower())


def _shape(tensor_type) -> tuple[list[int], list]:
    """(shape with -1 for symbolic or unknown dims, dims as written). Unknown rank: [-1]."""
    if not tensor_type.HasField("shape"):
        return [-1], []
    shape, dims = [], []
    for dim in tensor_type.shape.dim:
        if dim.HasField("dim_value"):
            shape.append(dim.dim_value)
            dims.append(dim.dim_value)
        else:
            shape.append(-1)
            dims.append(dim.dim_param or None)
    return shape, dims


def _describe_type(type_proto, depth: int = 0) -> tuple[str, list[int], list]:
    which = type_proto.WhichOneof("value")
    if depth > 16:
        return "unknown", [-1], []
    if which in ("tensor_type", "sparse_tensor_type"):
        tensor_type = getattr(type_proto, which)
        shape, dims = _shape(tensor_type)
        dtype = _dtype_name(tensor_type.elem_type)
        return (dtype if which == "tensor_type" else f"sparse<{dtype}>"), shape, dims
    if which == "sequence_type":
        inner, _, _ = _describe_type(type_proto.sequence_type.elem_type, depth + 1)
        return f"sequence<{inner}>", [-1], []
    if which == "map_type":
        value, _, _ = _describe_type(type_proto.map_type.value_type, depth + 1)
        return f"map<{_dtype_name(type_proto.map_type.key_type)},{value}>", [-1], []
    if which == "optional_type":
        inner, shape, dims = _describe_type(type_proto.optional_type.elem_type, depth + 1)
        return f"optional<{inner}>", shape, dims
    if which == "opaque_type":
        return "opaque", [-1], []
    return "unknown", [-1], []


def _fields(value_infos) -> tuple[list[dict], list[dict]]:
    signature, described = [], []
    for value_info in value_infos:
        dtype, shape, dims = _describe_type(value_info.type)
        signature.append({"name": value_info.name, "dtype": dtype, "shape": shape})
        described.append({"name": value_info.name, "dtype": dtype, "shape": shape, "dims": dims})
    return signature, described


def _all_tensors(graph, depth: int = 0):
    """Every TensorProto in a graph, its nodes' attributes and subgraphs."""
    if depth > MAX_NESTING:
        return
    yield from graph.initializer
    for sparse in graph.sparse_initializer:
        yield sparse.values
        yield sparse.indices
    for node in graph.node:
        yield from _attribute_tensors(node.attribute, depth)


def _attribute_tensors(attributes, depth: int):
    for attribute in attributes:
        if attribute.HasField("t"):
            yield attribute.t
        yield from attribute.tensors
        if attribute.HasField("sparse_tensor"):
            yield attribute.sparse_tensor.values
            yield attribute.sparse_tensor.indices
        for sparse in attribute.sparse_tensors:
            yield sparse.values
            yield sparse.indices
        if attribute.HasField("g"):
            yield from _all_tensors(attribute.g, depth + 1)
        for subgraph in attribute.graphs:
            yield from _all_tensors(subgraph, depth + 1)


def _model_tensors(model):
    yield from _all_tensors(model.graph)
    for training in model.training_info:
        yield from _all_tensors(training.initialization)
        yield from _all_tensors(training.algorithm)
    for function in model.functions:
        for node in function.node:
            yield from _attribute_tensors(node.attribute, 0)
        yield from _attribute_tensors(function.attribute_proto, 0)


def external_location_problem(location: str) -> str | None:
    """Why an external data location would read outside the model's directory, or None."""
    if not location:
        return "empty location"
    if "\x00" in location:
        return "location contains a NUL byte"
    if location.startswith(("/", "\\")):
        return "absolute path"
    if re.match(r"^[A-Za-z]:", location):
        return "path with a drive letter"
    if ".." in re.split(r"[\\/]", location):
        return "path escapes the model's directory (..)"
    return None


def _external_data(model) -> tuple[list[dict], list[str], list[str]]:
    """(references, unsafe-path problems, unreadable-reference problems)."""
    references, unsafe, broken = [], [], []
    for tensor in _model_tensors(model):
        if tensor.data_location != EXTERNAL and not tensor.external_data:
            continue
        entries = {entry.key: entry.value for entry in tensor.external_data}
        location = entries.get("location")
        reference = {"tensor": tensor.name, "location": location}
        for key in ("offset", "length"):
            if key in entries:
                if not entries[key].isdigit():
                    broken.append(f"tensor {tensor.name!r}: external data {key} {entries[key]!r} is not a number")
                else:
                    reference[key] = int(entries[key])
        if location is None:
            broken.append(f"tensor {tensor.name!r}: external data without a location")
        else:
            problem = external_location_problem(location)
            if problem:
                unsafe.append(f"tensor {tensor.name!r} reads {location!r}: {problem}")
                reference["unsafe"] = problem
        references.append(reference)
    return references, unsafe, broken


def inspect_onnx(fileobj) -> Report:
    """Inspect an ONNX model without loading its weights or its external data."""
    size = fileobj.seek(0, 2)
    detected = detect_kind(fileobj)
    if detected in _STRONG_OTHER_KINDS:
        return Report(FAILED, f"not an ONNX model: the content is {KIND_LABELS[detected]}", detected_kind=detected)
    if size == 0:
        return Report(FAILED, "not an ONNX model: the file is empty")
    if size > PROTOBUF_LIMIT:
        return Report(FAILED, f"file of {size} bytes is over the 2 GiB protobuf limit; a model this large must "
                      "be saved with its weights as external data", detected_kind=detected)
    skeleton = _Skeleton(MAX_SKELETON_BYTES)
    try:
        data = skeleton.rewrite(protowire.Source(fileobj), "model", 0, size)
        # The skeleton holds no external data to load; the flag is explicit so that no later
        # change here can ever make the library open files named by the model.
        model = onnx.load_model(io.BytesIO(data), load_external_data=False)
    except protowire.ProtoError as error:
        return Report(FAILED, f"not a valid ONNX protobuf: {error}", detected_kind=detected)
    except _TooLarge:
        return Report(FAILED, f"the graph (without weights) is larger than {MAX_SKELETON_BYTES} bytes",
                      detected_kind=detected)
    except (DecodeError, ValueError, RecursionError) as error:
        return Report(FAILED, f"not a valid ONNX model: {error}", detected_kind=detected)
    if model.ir_version <= 0 or not model.HasField("graph"):
        return Report(FAILED, "not a valid ONNX model: no IR version or no graph", detected_kind=detected)
    return _report(model, skeleton)


def _report(model, skeleton: _Skeleton) -> Report:
    graph = model.graph
    initializers = {tensor.name for tensor in graph.initializer}
    initializers |= {sparse.values.name for sparse in graph.sparse_initializer}
    input_signature, inputs = _fields(value for value in graph.input if value.name not in initializers)
    output_signature, outputs = _fields(graph.output)
    references, unsafe, broken = _external_data(model)
    op_types: dict[str, int] = {}
    for node in graph.node:
        key = f"{node.domain}:{node.op_type}" if node.domain not in ("", "ai.onnx") else node.op_type
        op_types[key] = op_types.get(key, 0) + 1
    details = {
        "ir_version": model.ir_version,
        "opset_imports": [
            {"domain": opset.domain or "ai.onnx", "version": opset.version} for opset in model.opset_import
        ],
        "producer_name": model.producer_name,
        "producer_version": model.producer_version,
        "domain": model.domain,
        "model_version": model.model_version,
        "doc_string": model.doc_string[:2000],
        "metadata": {entry.key: entry.value[:2000] for entry in list(model.metadata_props)[:200]},
        "graph_name": graph.name,
        "node_count": len(graph.node),
        "op_types": dict(sorted(op_types.items())),
        "initializer_count": len(graph.initializer) + len(graph.sparse_initializer),
        "inline_weight_bytes": skeleton.stripped_bytes,
        "functions": [f"{function.domain}:{function.name}" for function in model.functions][:MAX_LISTED],
        "inputs": inputs,
        "outputs": outputs,
        "external_data": references[:MAX_LISTED],
        "external_data_count": len(references),
    }
    signature = {"inputs": input_signature, "outputs": output_signature}
    opsets = ", ".join(f"{item['domain']} {item['version']}" for item in details["opset_imports"]) or "none"
    if unsafe:
        return Report(QUARANTINED, f"external data outside the model's directory: {unsafe[0]}"
                      + (f" (and {len(unsafe) - 1} more)" if len(unsafe) > 1 else ""),
                      detected_kind="onnx", details=details, signature=signature)
    if broken:
        return Report(FAILED, f"unreadable external data reference: {broken[0]}", detected_kind="onnx",
                      details=details, signature=signature)
    message = (f"ONNX IR {model.ir_version}, opset {opsets}, {counted(len(input_signature), 'input')}, "
               f"{counted(len(output_signature), 'output')}")
    if references:
        locations = sorted({reference["location"] for reference in references})
        message += f"; weights of {counted(len(references), 'tensor')} are in external files ({', '.join(locations[:3])}"
        message += ", ...)" if len(locations) > 3 else ")"
        details["external_data_note"] = "external data files are not part of this upload and were not checked"
    return Report(READY, message, detected_kind="onnx", details=details, signature=signature)
