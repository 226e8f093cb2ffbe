"""What a file is, from its first bytes, and what those bytes say.

`detect_kind` names the content, using the registry's format kinds where one fits:
"pkl" (a pickle stream), "joblib" (a compressed pickle, as joblib writes), "pt" (a PyTorch
zip), "savedmodel" (a zip holding saved_model.pb), "artifact" (a zip holding score.py or
runtime.yaml), "zip" (any other zip), "h5", "rda" (R data, also .rds), "safetensors", "onnx",
"pmml", "xml" (XML that is not PMML), or None when nothing is recognised. ONNX has no magic
number; it is recognised by walking the first protobuf fields of a ModelProto, which a
random file almost never satisfies, but a file it misses is still handed to the ONNX
inspector when declared as onnx.

Nothing here unpickles, imports or decompresses more than a few kilobytes.
"""

import bz2
import lzma
import os
import re
import struct
import zlib

from registry.introspection import protowire
from registry.introspection.report import FAILED, QUARANTINED, READY, Report

HEAD_SIZE = 64 * 1024
HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"
SAFETENSORS_MAX_HEADER = 100 * 1000 * 1000
R_DATA_MAGICS = (b"RDX2\n", b"RDX3\n", b"RDA2\n", b"RDA3\n", b"RDB2\n", b"RDB3\n")
_PMML_ROOT = re.compile(rb"<(?:[A-Za-z_][\w.-]*:)?PMML[\s>/]")
_PICKLE_GLOBAL = re.compile(rb"^c[A-Za-z_][\w.]*\n[A-Za-z_][\w.]*\n")
_PICKLE_OLD_START = re.compile(rb"^(?:\((?:dp|lp|tp|S'|S\"|I\d|V)|[\]\}\)\(]q\x00|[\]\}]\(|\(c[A-Za-z_])")
ONNX_MODEL_FIELDS = {1: 0, 2: 2, 3: 2, 4: 2, 5: 0, 6: 2, 7: 2, 8: 2, 14: 2, 20: 2, 25: 2, 26: 2}

KIND_LABELS = {
    "pkl": "a pickle",
    "joblib": "a compressed pickle (joblib)",
    "pt": "a PyTorch zip",
    "savedmodel": "a TensorFlow SavedModel zip",
    "artifact": "a model artifact zip",
    "zip": "a zip archive",
    "h5": "an HDF5 file",
    "rda": "R data",
    "safetensors": "a safetensors file",
    "onnx": "an ONNX model",
    "pmml": "a PMML document",
    "xml": "an XML document that is not PMML",
    None: "of no recognised kind",
}

_ZIP_KINDS = {"zip", "pt", "savedmodel", "artifact"}
# Which detected kinds each declared format kind accepts. None means "not recognised by its
# header": accepted where the kind's own inspector is the real judge (a protocol 0 pickle, an
# ONNX file whose first fields are unusual).
ACCEPTED_CONTENT = {
    "pkl": {"pkl", None},
    "joblib": {"pkl", "joblib", None},
    "pt": {"pt", "pkl", "zip", None},
    "onnx": {"onnx", None},
    "pmml": {"pmml", None},
    "safetensors": {"safetensors"},
    "rda": {"rda"},
    "h5": {"h5"},
    "savedmodel": _ZIP_KINDS,
    "artifact": _ZIP_KINDS,
}


def file_size(fileobj) -> int:
    return fileobj.seek(0, os.SEEK_END)


def read_at(fileobj, offset: int, count: int) -> bytes:
    fileobj.seek(offset)
    return fileobj.read(count)


def kind_contradiction(declared_kind: str, detected_kind: str | None) -> str | None:
    """A sentence saying why the content is not the declared kind, or None when it may be."""
    accepted = ACCEPTED_CONTENT.get(declared_kind)
    if accepted is None or detected_kind in accepted:
        return None
    return f"declared as {declared_kind} but the content is {KIND_LABELS.get(detected_kind, detected_kind)}"


# --- detection ------------------------------------------------------------------------------

def _decompress_head(data: bytes, size: int = 256) -> tuple[str | None, bytes]:
    """(compression name, first `size` decompressed bytes) for gzip/bzip2/xz/lzma/zlib data."""
    if data[:2] == b"\x1f\x8b":
        name, decompressor = "gzip", zlib.decompressobj(wbits=16 + zlib.MAX_WBITS)
    elif data[:3] == b"BZh" and data[3:4].isdigit():
        name, decompressor = "bzip2", bz2.BZ2Decompressor()
    elif data[:6] == b"\xfd7zXZ\x00":
        name, decompressor = "xz", lzma.LZMADecompressor(format=lzma.FORMAT_XZ)
    elif data[:3] == b"\x5d\x00\x00":
        name, decompressor = "lzma", lzma.LZMADecompressor(format=lzma.FORMAT_ALONE)
    elif len(data) >= 2 and data[0] == 0x78 and (data[0] * 256 + data[1]) % 31 == 0:
        name, decompressor = "zlib", zlib.decompressobj()
    else:
        return None, b""
    try:
        # max_length bounds the output whatever the input claims: no decompression bomb here.
        if isinstance(decompressor, bz2.BZ2Decompressor | lzma.LZMADecompressor):
            return name, decompressor.decompress(data, max_length=size)
        return name, decompressor.decompress(data, size)
    except (OSError, EOFError, ValueError, lzma.LZMAError, zlib.error):
        return name, b""


def _is_r_serialization(data: bytes) -> bool:
    """R's serialize() header, as saveRDS writes it (xdr, ascii or native binary)."""
    if data[:2] in (b"X\n", b"B\n") and len(data) >= 6:
        return struct.unpack(">I" if data[:1] == b"X" else "<I", data[2:6])[0] in (2, 3)
    return data[:4] in (b"A\n2\n", b"A\n3\n")


def _is_pickle(head: bytes, last_byte: bytes) -> bool:
    if len(head) >= 2 and head[0] == 0x80 and 2 <= head[1] <= 5:
        return True
    # Protocols 0 and 1 have no header; they must also end with the STOP opcode.
    return last_byte == b"." and bool(_PICKLE_GLOBAL.match(head) or _PICKLE_OLD_START.match(head))


def looks_like_onnx(head: bytes, size: int) -> bool:
    """Whether the first protobuf fields are those of an ONNX ModelProto.

    onnx.save writes ir_version (field 1) first; after that, every field must be a ModelProto
    field with its wire type, and every length must fit in the file.
    """
    position, fields = 0, 0
    while position < len(head) and fields < 8:
        try:
            tag, index = protowire.decode_varint(head, position)
            number, wire_type = tag >> 3, tag & 7
            if ONNX_MODEL_FIELDS.get(number) != wire_type or (fields == 0 and number != 1):
                return False
            value, index = protowire.decode_varint(head, index)
        except protowire.ProtoError:
            return fields > 0 and len(head) < size  # the head ends inside a field
        if fields == 0 and not 1 <= value <= 100:
            return False
        position = index + (value if wire_type == protowire.LEN else 0)
        if position > size:
            return False
        fields += 1
    return fields >= 2 or (fields == 1 and position == size)


def _zip_kind(fileobj) -> str:
    # Imported here: archives is only needed for zips, and validates before listing.
    from registry.introspection.archives import ArchiveError, ArchiveLimits, SafeZip

    try:
        with SafeZip(fileobj, limits=ArchiveLimits(max_depth=0)) as archive:
            names = archive.names()
    except ArchiveError:
        return "zip"
    return zip_kind_of_members(names)


def zip_kind_of_members(names: list[str]) -> str:
    """The kind of a zip from the names of its members: savedmodel, pt, artifact, or zip."""
    if any(re.search(r"(^|/)saved_model\.pb(txt)?$", name) for name in names):
        return "savedmodel"
    if any(re.fullmatch(r"[^/]+/data\.pkl", name) for name in names):
        return "pt"
    top_levels = {name.split("/", 1)[0] for name in names}
    prefix = f"{top_levels.pop()}/" if len(top_levels) == 1 and all("/" in name for name in names) else ""
    if f"{prefix}score.py" in names or f"{prefix}runtime.yaml" in names:
        return "artifact"
    return "zip"


def detect_kind(fileobj) -> str | None:
    """The kind of content in fileobj, from its bytes; None when no kind is recognised."""
    position = fileobj.tell()
    try:
        size = file_size(fileobj)
        head = read_at(fileobj, 0, HEAD_SIZE)
        if not head:
            return None
        if _hdf5_signature_offset(fileobj, size) is not None:
            return "h5"
        if head[:4] in (b"PK\x03\x04", b"PK\x05\x06"):
            return _zip_kind(fileobj)
        if _looks_like_safetensors(head, size):
            return "safetensors"
        last_byte = read_at(fileobj, size - 1, 1)
        if _is_pickle(head, last_byte):
            return "pkl"
        if head.startswith(R_DATA_MAGICS) or _is_r_serialization(head):
            return "rda"
        compression, inner = _decompress_head(head)
        if compression:
            if inner.startswith(R_DATA_MAGICS) or _is_r_serialization(inner):
                return "rda"
            if _is_pickle(inner, b"."):
                return "joblib"
            if compression != "zlib":
                return None
        text = _xml_head(head)
        if text is not None:
            return "pmml" if _PMML_ROOT.search(text) else "xml"
        if looks_like_onnx(head, size):
            return "onnx"
        return None
    finally:
        fileobj.seek(position)


def _looks_like_safetensors(head: bytes, size: int) -> bool:
    if len(head) < 10:
        return False
    length = struct.unpack("<Q", head[:8])[0]
    return 2 <= length <= min(SAFETENSORS_MAX_HEADER, size - 8) and head[8:9] == b"{"


def _xml_head(head: bytes) -> bytes | None:
    """The head as UTF-8-ish bytes if it starts like an XML document, else None."""
    if head.startswith((b"\xff\xfe", b"\xfe\xff")):
        try:
            head = head.decode("utf-16", errors="ignore").encode("utf-8")
        except UnicodeError:
            return None
    head = head.removeprefix(b"\xef\xbb\xbf").lstrip()
    return head if head.startswith(b"<") else None


def _hdf5_signature_offset(fileobj, size: int) -> int | None:
    """HDF5 puts its signature at 0, or after a user block at 512, 1024, 2048, ..."""
    offset = 0
    while offset + 8 <= size:
        if read_at(fileobj, offset, 8) == HDF5_SIGNATURE:
            return offset
        offset = 512 if offset == 0 else offset * 2
    return None


# --- per-kind header inspection ---------------------------------------------------------------

def inspect_h5(fileobj) -> Report:
    """Confirm an HDF5 file and read its superblock (version, offset and length sizes)."""
    size = file_size(fileobj)
    offset = _hdf5_signature_offset(fileobj, size)
    if offset is None:
        detected = detect_kind(fileobj)
        return Report(FAILED, f"not an HDF5 file: no HDF5 signature; the content is {KIND_LABELS.get(detected)}",
                      detected_kind=detected)
    superblock = read_at(fileobj, offset, 64)
    if len(superblock) < 11:
        return Report(FAILED, "HDF5 superblock is truncated", detected_kind="h5")
    version = superblock[8]
    details = {"superblock_version": version, "user_block_size": offset, "size": size}
    if version in (0, 1):
        # version, free-space version, root group version, reserved, shared header version,
        # size of offsets, size of lengths
        if len(superblock) < 16:
            return Report(FAILED, "HDF5 superblock is truncated", detected_kind="h5", details=details)
        details["offset_size"], details["length_size"] = superblock[13], superblock[14]
    elif version in (2, 3):
        details["offset_size"], details["length_size"] = superblock[9], superblock[10]
    else:
        return Report(FAILED, f"unknown HDF5 superblock version {version}", detected_kind="h5", details=details)
    if details["offset_size"] not in (2, 4, 8, 16, 32) or details["length_size"] not in (2, 4, 8, 16, 32):
        return Report(FAILED, "HDF5 superblock has invalid offset or length sizes", detected_kind="h5",
                      details=details)
    lambda_layer = keras_code_layer(fileobj)
    if lambda_layer:
        return Report(QUARANTINED, f"a Keras model with a {lambda_layer} layer: its Python code (marshalled bytecode) "
                      "runs when keras.models.load_model reads the file", detected_kind="h5", details=details)
    # Keras stores its configuration as root attributes; their names in the first megabyte are
    # a good hint (a hint only: attributes are not parsed).
    start = read_at(fileobj, 0, 1024 * 1024)
    details["keras_markers"] = sorted(
        marker for marker in ("keras_version", "model_config", "backend", "training_config")
        if marker.encode() in start
    )
    return Report(READY, f"HDF5 file, superblock version {version}", detected_kind="h5", details=details)


# A Keras layer that carries Python code: Lambda keeps its function as marshalled bytecode (or
# source) in the model's JSON configuration, which HDF5 stores as a plain attribute, and which
# .keras zips (config.json) and SavedModels (keras_metadata.pb) hold as text too.
_KERAS_CODE_LAYER = re.compile(rb'"class_name"\s*:\s*"(Lambda)"')
_SEARCH_CHUNK = 1024 * 1024


def keras_code_layer(fileobj) -> str | None:
    """The name of a Keras layer type that runs Python code when loaded, if the file holds one.

    Reads the whole file in chunks (overlapping, so a match across two is found); nothing is parsed.
    """
    fileobj.seek(0)
    tail = b""
    while chunk := fileobj.read(_SEARCH_CHUNK):
        window = tail + chunk
        match = _KERAS_CODE_LAYER.search(window)
        if match:
            fileobj.seek(0)
            return match.group(1).decode()
        tail = window[-256:]
    fileobj.seek(0)
    return None


def _r_version(packed: int) -> str:
    return f"{packed // 65536}.{packed % 65536 // 256}.{packed % 256}"


def inspect_rda(fileobj) -> Report:
    """Confirm R data (save() .rda/.RData or saveRDS() .rds) and read its serialization header."""
    head = read_at(fileobj, 0, HEAD_SIZE)
    compression, data = _decompress_head(head, 512)
    if not compression:
        data = head[:512]
    details = {"compression": compression or "none"}
    if data.startswith(R_DATA_MAGICS):
        details["container"] = "rdata"
        details["rdata_format"] = data[:4].decode("ascii")
        data = data[5:]
    elif _is_r_serialization(data):
        details["container"] = "rds"
    else:
        detected = detect_kind(fileobj)
        return Report(FAILED, f"not R data: no RDX/RDA header; the content is {KIND_LABELS.get(detected)}",
                      detected_kind=detected, details=details)
    encoding = {b"X\n": "xdr", b"A\n": "ascii", b"B\n": "native"}.get(data[:2])
    details["serialization"] = encoding
    if encoding == "xdr" or encoding == "native":
        order = ">" if encoding == "xdr" else "<"
        if len(data) < 14:
            return Report(FAILED, "R data header is truncated", detected_kind="rda", details=details)
        version, writer, minimum = struct.unpack(order + "3I", data[2:14])
        details["format_version"] = version
        details["written_by_r"] = _r_version(writer)
        details["minimum_r"] = _r_version(minimum)
        if version not in (2, 3):
            return Report(FAILED, f"unknown R serialization version {version}", detected_kind="rda", details=details)
        if version == 3 and len(data) >= 18:
            length = struct.unpack(order + "I", data[14:18])[0]
            if length <= 64:
                details["native_encoding"] = data[18:18 + length].decode("ascii", errors="replace")
    elif encoding == "ascii":
        lines = data.split(b"\n")
        if len(lines) > 4 and all(line.strip().isdigit() for line in lines[1:4]):
            details["format_version"] = int(lines[1])
            details["written_by_r"] = _r_version(int(lines[2]))
            details["minimum_r"] = _r_version(int(lines[3]))
    else:
        return Report(FAILED, "R data header has an unknown serialization format", detected_kind="rda",
                      details=details)
    version_text = details.get("format_version", "?")
    return Report(READY, f"R data ({details['container']}), serialization version {version_text}",
                  detected_kind="rda", details=details)


def inspect_other(fileobj, *, scan_serialized=None) -> Report:
    """A file of kind "other": say what it is, and refuse serialized Python objects.

    A pickle (or a PyTorch or joblib file) uploaded as "other" would skip the pickle scanner,
    so it fails with a message asking for the right kind. A plain zip is checked like an
    artifact's archive (limits, unsafe members, serialized models inside, members in review
    make it review). Anything else is accepted as opaque data here; dispatch.introspect also
    reads every file as pickle.load would, which finds a pickle no header announces.
    """
    detected = detect_kind(fileobj)
    size = file_size(fileobj)
    details = {"size": size}
    if detected in ("pkl", "joblib", "pt"):
        return Report(FAILED, f"the content is {KIND_LABELS[detected]}; upload it as kind '{detected}' "
                      "so it can be scanned", detected_kind=detected, details=details)
    if detected in ("savedmodel", "artifact"):
        return Report(FAILED, f"the content is {KIND_LABELS[detected]}; upload it as kind '{detected}' "
                      "so it can be checked", detected_kind=detected, details=details)
    if detected == "zip":
        from registry.introspection.artifact import inspect_zip

        report = inspect_zip(fileobj, scan_serialized=scan_serialized)
        report.details["size"] = size
        return report
    if detected is None:
        return Report(READY, "opaque data of no recognised kind", detected_kind=None, details=details)
    if detected == "xml":
        return Report(READY, "an XML document", detected_kind=detected, details=details)
    return Report(READY, f"the content is {KIND_LABELS[detected]}; uploading it as kind '{detected}' "
                  "would let the registry read more from it", detected_kind=detected, details=details)
