"""What a file's two ends say about it, for files the registry stores but never inspects whole
(a model's attachments): is it a serialized model, and which safe content type may it be served as.

While an upload streams to storage, `EndsRecorder` keeps its first HEAD_SIZE bytes and its last
TAIL_SIZE bytes and hashes it; nothing else is held. `EndsView` is a seekable file over those two
ends, on which the kind detection of registry.introspection.headers and the pickle reading of
registry.introspection.pickles run unchanged: a read they need from the middle raises
`MiddleUnknown`, and the verdict is then "cannot tell", which refuses (fail closed). Nothing here
unpickles, imports, extracts or decompresses more than a few kilobytes.
"""

from __future__ import annotations

import hashlib
import io
import zipfile

from registry.introspection import headers, pickles

HEAD_SIZE = headers.HEAD_SIZE
# A zip's central directory sits at its end: a torch zip's is a few kilobytes; one of this
# size lists tens of thousands of members.
TAIL_SIZE = 1024 * 1024

# Detected kinds that are serialized models: they belong in a version's formats, whose workers
# scan them. h5, rda, xml and plain zips are also data files, so they are not refused.
MODEL_KINDS = {
    "pkl": "a pickle",
    "joblib": "a joblib (compressed pickle) file",
    "pt": "a PyTorch zip (it holds data.pkl)",
    "savedmodel": "a TensorFlow SavedModel zip",
    "artifact": "a model artifact zip (score.py / runtime.yaml)",
    "onnx": "an ONNX model",
    "safetensors": "a safetensors weights file",
    "pmml": "a PMML model",
}

# The only content types an attachment is served as besides application/octet-stream: from its
# name's extension, and only when its first bytes agree. Always as a download (attachment).
SAFE_CONTENT_TYPES = {
    ".png": ("image/png", lambda head: head.startswith(b"\x89PNG\r\n\x1a\n")),
    ".jpg": ("image/jpeg", lambda head: head.startswith(b"\xff\xd8\xff")),
    ".jpeg": ("image/jpeg", lambda head: head.startswith(b"\xff\xd8\xff")),
    ".pdf": ("application/pdf", lambda head: head.startswith(b"%PDF-")),
    ".csv": ("text/csv", lambda head: _is_text(head)),
    ".txt": ("text/plain", lambda head: _is_text(head)),
    ".md": ("text/markdown", lambda head: _is_text(head)),
    ".json": ("application/json", lambda head: _is_text(head)),
}
OCTET_STREAM = "application/octet-stream"


class MiddleUnknown(Exception):
    """A read of bytes that were not kept (neither end)."""


class EndsRecorder:
    """read(size) over an upload stream that hashes it and keeps its two ends."""

    def __init__(self, stream):
        self._stream = stream
        self._sha256 = hashlib.sha256()
        self.head = bytearray()
        self._tail = bytearray()
        self.size = 0

    def read(self, size: int = -1) -> bytes:
        chunk = self._stream.read(size)
        if chunk:
            self._sha256.update(chunk)
            self.size += len(chunk)
            if len(self.head) < HEAD_SIZE:
                self.head += chunk[:HEAD_SIZE - len(self.head)]
            self._tail += chunk[-TAIL_SIZE:]
            if len(self._tail) > 2 * TAIL_SIZE:
                del self._tail[:-TAIL_SIZE]
        return chunk

    @property
    def tail(self) -> bytes:
        return bytes(self._tail[-TAIL_SIZE:])

    @property
    def sha256(self) -> str:
        return self._sha256.hexdigest()

    def view(self, *, middle_empty: bool = False) -> EndsView:
        return EndsView(bytes(self.head), self.tail, self.size, middle_empty=middle_empty)


class EndsView(io.RawIOBase):
    """A read-only, seekable file of `size` bytes of which only `head` and `tail` are known.
    `middle_empty`: reads of the middle answer no bytes instead of raising MiddleUnknown."""

    def __init__(self, head: bytes, tail: bytes, size: int, *, middle_empty: bool = False):
        super().__init__()
        self._head, self._tail, self._size = head, tail, size
        self._tail_start = size - len(tail)
        self._position = 0
        self._middle_empty = middle_empty

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._position

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._position, io.SEEK_END: self._size}[whence]
        self._position = max(0, base + offset)
        return self._position

    def read(self, size: int = -1) -> bytes:
        if size is None or size < 0:
            size = self._size - self._position
        start, end = self._position, min(self._position + size, self._size)
        if start >= end:
            return b""
        if end <= len(self._head):
            data = self._head[start:end]
        elif start >= self._tail_start:
            data = self._tail[start - self._tail_start:end - self._tail_start]
        elif self._middle_empty:
            return b""
        else:
            raise MiddleUnknown(f"bytes {start}-{end} of {self._size} were not kept")
        self._position = end
        return data

    def readinto(self, buffer) -> int:
        data = self.read(len(buffer))
        buffer[:len(data)] = data
        return len(data)


def _is_text(head: bytes) -> bool:
    if b"\x00" in head:
        return False
    try:
        head.decode("utf-8")
    except UnicodeDecodeError as error:
        return error.start >= len(head) - 3  # a character cut at the end of the head
    return True


def _zip_kind(view: EndsView) -> str:
    """A zip's kind from the names in its central directory, which must lie in the kept tail
    (MiddleUnknown otherwise). Only the directory is read (zipfile opens no member here), so no
    member count limit applies; bytes that only start like a zip are no zip."""
    try:
        with zipfile.ZipFile(view) as archive:
            names = archive.namelist()
    except (zipfile.BadZipFile, zipfile.LargeZipFile, ValueError, EOFError, OSError):
        return "zip"
    return headers.zip_kind_of_members(names)


def serialized_model(recorder: EndsRecorder) -> str | None:
    """Why these bytes must not be an attachment (a sentence), or None when they may be.

    Refused: a serialized model by its content (MODEL_KINDS), anything a pickle loader (pickle,
    joblib, torch) would act on from its first byte beyond plain constants, and a file whose
    kind cannot be told from its ends."""
    if recorder.size == 0:
        return None
    head = bytes(recorder.head)
    try:
        if head[:4] in (b"PK\x03\x04", b"PK\x05\x06"):
            kind = _zip_kind(recorder.view())
        else:
            # Only the HDF5 probe reads the middle of a file that is not a zip, and h5 is allowed.
            kind = headers.detect_kind(recorder.view(middle_empty=True))
    except MiddleUnknown:
        return "it is a zip whose list of members is too large to check"
    if kind in MODEL_KINDS:
        return f"it is {MODEL_KINDS[kind]}"
    report = pickles.scan_as_loaded(recorder.view(), size=recorder.size)
    if report is None:
        return None
    reading = report.details.get("as_loaded", {})
    if reading.get("accepted_by") and reading.get("constants_only"):
        return None  # a pickle of constants only ("N." is one) is plain data to every loader
    if report.details.get("internal_error"):
        return "pickle loaders would start reading it and it could not be checked whole"
    return "pickle loaders would act on it (" + report.message[:200] + ")"


def safe_content_type(name: str, head: bytes) -> str:
    """The content type to serve `name` as: one of SAFE_CONTENT_TYPES when its extension names
    one and its first bytes agree, else application/octet-stream."""
    dot = name.rfind(".")
    known = SAFE_CONTENT_TYPES.get(name[dot:].lower()) if dot > 0 else None
    if known is None:
        return OCTET_STREAM
    content_type, agrees = known
    return content_type if agrees(bytes(head)) else OCTET_STREAM
