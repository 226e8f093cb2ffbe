"""Containers a pickle travels in: a PyTorch zip, joblib's compressed and raw files, an artifact
zip, a plain zip, and two hiding places (a kind "other" file, an HDF5 user block).

Each wrapper takes a whole pickle stream and returns (suffix, bytes, declared kind).
"""

from __future__ import annotations

import bz2
import gzip
import io
import lzma
import struct
import zipfile
import zlib

from tests.corpus.opcodes import (
    BUILD,
    EMPTY_DICT,
    EMPTY_TUPLE,
    MARK,
    NEWFALSE,
    NEWOBJ,
    NEWTRUE,
    SETITEMS,
    STOP,
    TUPLE1,
    body_of,
    call,
    global_,
    integer,
    proto,
    text,
)
from tests.registry.introspection import sandbox

HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"

# The artifact a data scientist zips: the sandbox's runtime.yaml and score.py.
RUNTIME_YAML, SCORE_PY = sandbox.RUNTIME_YAML, sandbox.SCORE_PY


def zip_of(members: dict[str, bytes], compression: int = zipfile.ZIP_STORED) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression) as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return buffer.getvalue()


def torch_zip(data_pkl: bytes, *, archive: str = "archive") -> bytes:
    """The layout torch.save (>= 1.6) writes: <archive>/data.pkl, byteorder, data/<key>, version."""
    return zip_of({
        f"{archive}/data.pkl": data_pkl,
        f"{archive}/byteorder": b"little",
        f"{archive}/data/0": bytes(16),
        f"{archive}/version": b"3\n",
        f"{archive}/.data/serialization_id": b"1234567890123456789012345678901234567890",
    })


def artifact_zip(model_pkl: bytes, *, name: str = "model.pkl") -> bytes:
    return zip_of({"score.py": SCORE_PY, "runtime.yaml": RUNTIME_YAML, name: model_pkl}, zipfile.ZIP_DEFLATED)


def joblib_compressed(data: bytes, method: str) -> bytes:
    """What joblib.dump(compress=method) writes around a pickle stream."""
    if method == "zlib":
        return zlib.compress(data, 3)
    if method == "gzip":
        return gzip.compress(data, 3, mtime=0)
    if method == "bz2":
        return bz2.compress(data, 3)
    if method == "xz":
        return lzma.compress(data, format=lzma.FORMAT_XZ)
    if method == "lzma":
        return lzma.compress(data, format=lzma.FORMAT_ALONE)
    if method == "lz4":
        import lz4.frame

        return lz4.frame.compress(data)
    raise ValueError(method)


def joblib_array(values: bytes = bytes(range(32)), *, position: int = 0) -> bytes:
    """A NumpyArrayWrapper for a uint8 array as joblib.dump writes it, with its raw bytes after BUILD
    (the padding byte and padding make the data start on a 16-byte boundary of the file, counted
    from `position`, where this snippet starts)."""
    dtype = call(global_("numpy", "dtype"), text("u1"), NEWFALSE, NEWTRUE)
    state = (EMPTY_DICT + MARK
             + text("subclass") + global_("numpy", "ndarray")
             + text("shape") + integer(len(values)) + TUPLE1
             + text("order") + text("C")
             + text("dtype") + dtype
             + text("allow_mmap") + NEWTRUE
             + text("numpy_array_alignment_bytes") + integer(16)
             + SETITEMS)
    head = global_("joblib.numpy_pickle", "NumpyArrayWrapper") + EMPTY_TUPLE + NEWOBJ + state + BUILD
    after_padding_byte = position + len(head) + 1
    padding = (-after_padding_byte) % 16
    return head + bytes([padding]) + b"\xff" * padding + values


def joblib_raw_looking(payload: bytes) -> bytes | None:
    """An uncompressed joblib file {"coef_": <array>, "model": <payload>}: a real joblib array
    before the payload. None when the payload is not a single spliceable pickle."""
    body = body_of(payload)
    if body is None:
        return None
    start = proto(4) + EMPTY_DICT + MARK + text("coef_")
    return start + joblib_array(position=len(start)) + text("model") + body + SETITEMS + STOP


def h5_user_block(payload: bytes) -> bytes:
    """The pickle in an HDF5 user block (512, 1024, ... bytes), then a version 0 superblock."""
    block = 512
    while block < len(payload):
        block *= 2
    undefined = b"\xff" * 8
    superblock = (HDF5_SIGNATURE + bytes([0, 0, 0, 0, 0, 8, 8, 0]) + struct.pack("<HHI", 4, 16, 0)
                  + struct.pack("<Q", block) + undefined + struct.pack("<Q", 96 + 40) + undefined + bytes(40))
    return payload + bytes(block - len(payload)) + superblock


def prefixed(payload: bytes) -> bytes:
    """Two harmless opcodes (NONE, POP) in front: pickle.loads still runs the payload."""
    return b"N0" + payload


# (suffix, builder, declared kind); a builder may return None when it does not apply.
WRAPPERS = [
    ("pt-zip", torch_zip, "pt"),
    ("joblib-zlib", lambda data: joblib_compressed(data, "zlib"), "joblib"),
    ("joblib-gzip", lambda data: joblib_compressed(data, "gzip"), "joblib"),
    ("joblib-bz2", lambda data: joblib_compressed(data, "bz2"), "joblib"),
    ("joblib-xz", lambda data: joblib_compressed(data, "xz"), "joblib"),
    ("joblib-lzma", lambda data: joblib_compressed(data, "lzma"), "joblib"),
    ("joblib-lz4", lambda data: joblib_compressed(data, "lz4"), "joblib"),
    ("joblib-raw", joblib_raw_looking, "joblib"),
    ("artifact-zip", artifact_zip, "artifact"),
    ("plain-zip", lambda data: zip_of({"model.pkl": data}, zipfile.ZIP_DEFLATED), "other"),
    ("prefixed-other", prefixed, "other"),
    ("h5-userblock", h5_user_block, "h5"),
]
