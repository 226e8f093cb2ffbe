"""The pickle opcode machine: reads a pickle stream and walks it with a symbolic stack and memo.

Nothing here unpickles, imports or executes anything. See pickles.py for what is reported.
"""

from __future__ import annotations

import codecs
import io
import pickletools
import re
import struct
import zlib
from collections import ChainMap
from contextlib import contextmanager
from dataclasses import dataclass

from registry.introspection.pickle_policy import (
    ALLOWED, ATTRIBUTE_GETTERS, CONSTRUCT_ONLY, DANGEROUS, UNVETTED, forwarded_positions, never_text, _IMPORT_GADGETS, _NUMPY_DTYPE, _WRAPPER_CLASSES, _py3_name, classify_global,
)

@dataclass(frozen=True)
class ScanLimits:
    max_bytes: int = 32 * 1024**3  # bytes of one stream, after decompression, skipped bytes included
    max_opcodes: int = 20_000_000  # opcodes walked in one file, embedded pickles included
    max_memo: int = 5_000_000  # memo entries of one pickle stream
    max_stack: int = 2_000_000  # values on the stack and under marks
    max_pickles: int = 1000  # pickles one after another in one stream
    max_depth: int = 4  # embedded pickles inside embedded pickles
    max_embedded_bytes: int = 8 * 1024 * 1024  # a larger bytes constant is skipped, not scanned as a pickle
    max_zip_members: int = 100_000  # a large state dict has one member per tensor
    max_text_bytes: int = 256 * 1024 * 1024  # string values remembered (for STACK_GLOBAL); the rest are opaque


DEFAULT_LIMITS = ScanLimits()
DEFAULT_MAX_BYTES = DEFAULT_LIMITS.max_bytes

_CHUNK = 64 * 1024
_SKIP_CHUNK = 1024 * 1024
_MAX_NAME = 1024  # module and name strings longer than this are never legitimate
_MAX_TEXT_VALUE = _MAX_NAME  # longer strings are kept as "some long text", not their value
_MAX_CACHED_VERDICTS = 100_000
_MAX_DANGEROUS_LABELS = 1000
_MAX_INT_DIGITS = 64 * 1024
_TRACKED_ITEMS = 64  # items remembered per container; joblib wrappers and dtypes need fewer
_MAX_FINDINGS = 100
_MAX_GLOBALS_LISTED = 10_000

# torch.serialization's legacy magic number, the first pickle of a pre-1.6 .pt file.
TORCH_LEGACY_MAGIC = 0x1950A86A20F9469CFC6C



class _ScanError(Exception):
    """The data cannot be fully parsed: the file is never reported clean."""

    def __init__(self, message: str, offset: int | None = None):
        super().__init__(message)
        self.message = message
        self.offset = offset

    def describe(self) -> str:
        return self.message if self.offset is None else f"{self.message} (at byte {self.offset})"


class _LimitExceeded(_ScanError):
    pass


class _Truncated(_ScanError):
    def __init__(self, offset: int | None = None):
        super().__init__("the data ends in the middle of a pickle (truncated)", offset)


# --- reading ------------------------------------------------------------------------------------

class _Source:
    """A forward reader over a binary stream, with the logical offset of every byte.

    Only a small buffer is held. Large skips seek on real files and are read and dropped on
    decompressed streams. `max_bytes` bounds how far into the stream anything goes.
    """

    def __init__(self, raw, *, max_bytes: int, size: int | None = None, start: int = 0):
        self._raw = raw
        self._buf = b""
        self._i = 0
        self._base = start  # logical offset of self._buf[0]
        self._eof = False
        self.size = size  # known for seekable files: skips can be checked without reading
        self.max_bytes = max_bytes
        self.is_truncated = False

    @property
    def pos(self) -> int:
        return self._base + self._i

    def _raw_read(self, count: int) -> bytes:
        try:
            return self._raw.read(count)
        except Exception as error:  # zlib.error, lzma.LZMAError, BadZipFile, ArchiveError...
            message = getattr(error, "reason", None) or str(error) or type(error).__name__
            raise _ScanError(f"cannot read the data: {message}", self.pos) from error

    def _fill(self, want: int) -> bool:
        have = len(self._buf) - self._i
        if have >= want:
            return True
        if self._eof:
            return False
        parts = [self._buf[self._i:]] if have else []
        self._base += self._i
        while have < want:
            chunk = self._raw_read(max(_CHUNK, want - have))
            if not chunk:
                self._eof = True
                break
            parts.append(chunk)
            have += len(chunk)
        self._buf = b"".join(parts)
        self._i = 0
        # Checked when data arrives: a stream longer than the limit fails, read or skipped.
        if self._base + len(self._buf) > self.max_bytes:
            raise _LimitExceeded(f"more than {self.max_bytes} bytes of data (limit)", self.max_bytes)
        return have >= want

    def at_eof(self) -> bool:
        return not self._fill(1)

    def read(self, count: int) -> bytes:
        if len(self._buf) - self._i < count and not self._fill(count):
            raise _Truncated(self._base + len(self._buf))
        data = self._buf[self._i:self._i + count]
        self._i += count
        return data

    def read_byte(self) -> int:
        if self._i >= len(self._buf) and not self._fill(1):
            raise _Truncated(self.pos)
        value = self._buf[self._i]
        self._i += 1
        return value

    def skip(self, count: int):
        have = len(self._buf) - self._i
        if count <= have:
            self._i += count
            return
        count -= have
        self._base += len(self._buf)
        self._buf, self._i = b"", 0
        if self.size is not None and self._base + count > self.size:
            raise _Truncated(self.size)
        if self._base + count > self.max_bytes:
            raise _LimitExceeded(f"more than {self.max_bytes} bytes of data (limit)", self.max_bytes)
        if self.size is not None:
            self._raw.seek(count, io.SEEK_CUR)
            self._base += count
            return
        while count:
            chunk = self._raw_read(min(count, _SKIP_CHUNK))
            if not chunk:
                self._eof = True
                raise _Truncated(self._base)
            count -= len(chunk)
            self._base += len(chunk)

    def readline(self, keep: int, *, partial: bool = False) -> tuple[bytes | None, int]:
        """(the line without its newline, or None if longer than `keep`; its length).

        With `partial`, a last line without a newline is returned as pickle's readers use
        it (its last byte dropped, as if it were the newline) and is_truncated is set.
        """
        parts, kept, total, overflow = [], 0, 0, False
        while True:
            end = self._buf.find(b"\n", self._i)
            stop = end if end >= 0 else len(self._buf)
            length = stop - self._i
            if not overflow and kept + length <= keep:
                parts.append(self._buf[self._i:stop])
                kept += length
            else:
                overflow, parts = True, []
            total += length
            if end >= 0:
                self._i = end + 1
                return (None if overflow else b"".join(parts)), total
            self._base += len(self._buf)
            self._buf, self._i = b"", 0
            if not self._fill(1):
                if partial:
                    self.is_truncated = True
                    return (None if overflow else b"".join(parts)[:-1]), max(total - 1, 0)
                raise _Truncated(self.pos)

    @contextmanager
    def view_from(self, offset: int):
        """A second reader from `offset` of the same seekable file; this one is restored after."""
        resume = self._base + len(self._buf)
        self._raw.seek(offset)
        try:
            yield _Source(self._raw, max_bytes=self.max_bytes, size=self.size, start=offset)
        finally:
            self._raw.seek(resume)


class _ZlibStream:
    """zlib or gzip data as a readable stream (several concatenated streams, as joblib reads)."""

    def __init__(self, raw, wbits: int):
        self._raw = raw
        self._wbits = wbits
        self._decompressor = zlib.decompressobj(wbits)

    def read(self, count: int) -> bytes:
        while True:
            if self._decompressor.unconsumed_tail:
                data = self._decompressor.unconsumed_tail
            elif self._decompressor.eof:
                data = self._decompressor.unused_data or self._raw.read(_CHUNK)
                if not data:
                    return b""
                self._decompressor = zlib.decompressobj(self._wbits)
            else:
                data = self._raw.read(_CHUNK)
                if not data:
                    raise EOFError("compressed data ends before its end-of-stream marker")
            output = self._decompressor.decompress(data, count)
            if output:
                return output


class _ChunkStream:
    """A chunk iterator (SafeZip.iter_chunks) as a readable stream."""

    def __init__(self, chunks):
        self._chunks = iter(chunks)
        self._chunk = b""
        self._offset = 0

    def read(self, count: int) -> bytes:
        if self._offset >= len(self._chunk):
            self._chunk, self._offset = next(self._chunks, b""), 0
        data = self._chunk[self._offset:self._offset + count]
        self._offset += len(data)
        return data


# --- symbolic values ----------------------------------------------------------------------------

class _Sentinel:
    __slots__ = ("label",)

    def __init__(self, label: str):
        self.label = label

    def __repr__(self):
        return f"<{self.label}>"


LONG_TEXT = _Sentinel("long text")
BLOB = _Sentinel("bytes")
BIG_INT = _Sentinel("large integer")
OPAQUE = _Sentinel("out-of-band buffer")
FLOAT = _Sentinel("float")


class _Seq:
    """A tuple, list, set or frozenset: its first items and how many it has."""

    __slots__ = ("kind", "items", "length")

    def __init__(self, kind: str, items=()):
        self.kind = kind
        self.items = list(items[:_TRACKED_ITEMS])
        self.length = len(items)

    def extend(self, items):
        room = _TRACKED_ITEMS - len(self.items)
        if room > 0:
            self.items.extend(items[:room])
        self.length += len(items)

    @property
    def complete(self) -> bool:
        return self.length == len(self.items)


class _Map:
    """A dict: its first key/value pairs, in order, and how many assignments it had."""

    __slots__ = ("pairs", "length")

    def __init__(self, pairs=()):
        self.pairs = list(pairs[:_TRACKED_ITEMS])
        self.length = len(pairs)

    def update(self, pairs):
        room = _TRACKED_ITEMS - len(self.pairs)
        if room > 0:
            self.pairs.extend(pairs[:room])
        self.length += len(pairs)

    @property
    def complete(self) -> bool:
        return self.length == len(self.pairs)


_DOTTED_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*")


def _importable_name(module: str, name: str) -> bool:
    """Whether pickle could import this: otherwise the import fails before any code runs."""
    return bool(_DOTTED_NAME.fullmatch(module) and _DOTTED_NAME.fullmatch(name))


# Packages a loading machine has when it loads a model file at all.
_MODEL_LIBRARIES = {"numpy", "scipy", "sklearn", "pandas", "joblib", "torch", "xgboost", "lightgbm", "catboost",
                    "statsmodels"}
_GETTER = "attribute getter"  # the verdict of a builtins.getattr reference until it is settled
_GETTER_NAMES = {("builtins", "getattr"), ("__builtin__", "getattr")}


class _Global:
    __slots__ = ("module", "name", "key", "verdict")

    def __init__(self, module: str, name: str, verdict: str):
        self.module = module
        self.name = name
        self.key = _py3_name(module, name)
        self.verdict = verdict

    @property
    def label(self) -> str:
        return f"{self.module}.{self.name}"


class _Instance:
    """What a call, NEWOBJ or INST produced. `attrs` is its __dict__ as far as it is known."""

    __slots__ = ("factory", "cls", "args", "attrs", "state", "built", "may_be_wrapper")

    def __init__(self, factory, cls, args, attrs):
        self.factory = factory  # the callee
        self.cls = cls  # the class instantiated, when known (_Global)
        self.args = args
        self.attrs = attrs  # dict of str -> value, or None when unknown
        self.state = None  # the last BUILD state
        self.built = 0
        # Made by a call that was given a joblib array wrapper: it may be that wrapper itself
        # (an identity function), and joblib would read array data after its BUILD.
        self.may_be_wrapper = False

    @property
    def is_wrapper(self) -> bool:
        return isinstance(self.cls, _Global) and self.cls.key in _WRAPPER_CLASSES


class _Persistent:
    __slots__ = ("pid",)

    def __init__(self, pid):
        self.pid = pid


def _describe(value) -> str:
    if isinstance(value, _Instance):
        factory = value.factory
        return f"the result of calling {factory.label}" if isinstance(factory, _Global) else "the result of a call"
    if isinstance(value, _Persistent):
        return "a persistent-id object"
    if isinstance(value, _Global):
        return value.label
    if isinstance(value, _Seq):
        return f"a {value.kind}"
    if isinstance(value, _Map):
        return "a dict"
    if isinstance(value, _Sentinel):
        return value.label
    return type(value).__name__


def _tuple_items(value) -> list | None:
    if isinstance(value, _Seq) and value.kind in ("tuple", "list") and value.complete:
        return value.items
    return None


# --- the scan -----------------------------------------------------------------------------------

class _Scan:
    """Everything learnt about one file, shared by every pickle walked in it."""

    def __init__(self, limits: ScanLimits):
        self.limits = limits
        self.opcodes = 0
        self.protocol = 0
        self.pickles = 0
        self.embedded = 0
        self.globals: dict[tuple[str, str], dict] = {}
        self.globals_truncated = False
        self.findings: list[dict] = []
        self.finding_count = 0
        self.dangerous_labels: dict[str, None] = {}  # ordered, unique
        self.notes: list[str] = []
        self.arrays = 0
        self.array_bytes = 0
        self.text_bytes = 0
        self.persistent_ids: list = []
        # builtins.getattr references put on the stack, and those consumed reading a named
        # attribute of an imported class (see ATTRIBUTE_GETTERS): any difference is dangerous.
        self.getter_pushes = 0
        self.getter_uses = 0
        self.wrappers = 0  # joblib array wrappers made (holds_wrapper is only needed after one)
        self._verdicts: dict[tuple[str, str], tuple[str, str | None]] = {}

    def record_global(self, module: str, name: str, where: str, offset: int, *, hypothetical: bool = False
                      ) -> _Global:
        """Classify and count an import. Hypothetical imports (a what-if reading) count only if dangerous."""
        key = (module, name)
        verdict, reason = self._verdicts.get(key) or classify_global(module, name)
        if len(self._verdicts) < _MAX_CACHED_VERDICTS:
            self._verdicts[key] = (verdict, reason)
        entry = self.globals.get(key)
        if hypothetical and verdict != DANGEROUS:
            pass  # a what-if reading: only what is dangerous counts here (and unvetted calls, see call())
        elif entry is None:
            if len(self.globals) < _MAX_GLOBALS_LISTED:
                self.globals[key] = {"module": module, "name": name, "verdict": verdict, "count": 1, "called": False}
            else:
                self.globals_truncated = True
        else:
            entry["count"] += 1
        if verdict == DANGEROUS:
            self.dangerous(f"{module}.{name}", f"dangerous global {module}.{name}: {reason}", where, offset,
                           kind="dangerous_global")
        return _Global(module, name, verdict)

    def settle_getters(self) -> None:
        """After the walk: a getattr reference not consumed as an attribute read is dangerous."""
        if self.getter_pushes > self.getter_uses:
            for entry in self.globals.values():
                if (entry["module"], entry["name"]) in _GETTER_NAMES:
                    entry["verdict"] = DANGEROUS
            self.dangerous("builtins.getattr", "builtins.getattr is used other than to read a named attribute of "
                           "an imported class: it can reach any attribute of any object", "pickle", None,
                           kind="dangerous_global")
            self.getter_uses = self.getter_pushes

    def known_package(self, module: str) -> bool:
        top_level = module.split(".", 1)[0]
        return top_level in _MODEL_LIBRARIES or any(
            entry["module"].split(".", 1)[0] == top_level for entry in self.globals.values())

    def mark_called(self, value) -> None:
        """An imported global is called with arguments from the file (REDUCE, INST, OBJ, a forwarder)."""
        if isinstance(value, _Global):
            entry = self.globals.get((value.module, value.name))
            if entry is not None:
                entry["called"] = True

    def dangerous(self, label: str, message: str, where: str, offset: int | None, *, kind: str):
        self.finding_count += 1
        if len(self.dangerous_labels) < _MAX_DANGEROUS_LABELS:
            self.dangerous_labels[label] = None
        if len(self.findings) < _MAX_FINDINGS:
            self.findings.append({"kind": kind, "message": message, "where": where, "offset": offset})

    def note(self, message: str):
        if len(self.notes) < _MAX_FINDINGS:
            self.notes.append(message)


_OPCODES = {op.code.encode("latin-1")[0]: op for op in pickletools.opcodes}
_STRUCTS = {fmt: struct.Struct(fmt).unpack for fmt in ("<i", "<I", "<H", "<Q", "<q")}
_HIGHEST_PROTOCOL = 5  # the opcodes this scanner understands
_MARK_NEEDED = "could not find MARK"


class _Machine:
    """Walks pickle opcodes with a symbolic stack and memo, recording what the scan needs.

    joblib_arrays: honour joblib's NumpyUnpickler (raw array bytes after a wrapper's BUILD).
    plain_views: also walk those array bytes as opcodes, as plain pickle.load would.
    lenient: a what-if walk (plain_views): stop quietly at the first error, mutate nothing
    shared with the main walk, only record what is dangerous.
    """

    def __init__(self, scan: _Scan, source: _Source, *, where: str, depth: int = 0, joblib_arrays: bool = False,
                 plain_views: bool = False, lenient: bool = False, memo=None):
        self.scan = scan
        self.src = source
        self.where = where
        self.depth = depth
        self.joblib_arrays = joblib_arrays
        self.plain_views = plain_views
        self.lenient = lenient
        self.memo = {} if memo is None else memo
        self.stack: list = []
        self.metastack: list[list] = []
        self.meta_items = 0
        self.frame_end: int | None = None
        self.proto = 0
        self.op_offset = 0
        self.collect_persistent_ids = False  # legacy PyTorch files need them to size storages
        self.handlers = {code: getattr(self, "op_" + op.name, self.op_unsupported) for code, op in _OPCODES.items()}

    # -- driving --

    def run_pickle(self):
        """Walk one pickle up to and including STOP; return the value it leaves."""
        self.stack, self.metastack, self.meta_items, self.proto = [], [], 0, 0
        self.frame_end = None
        handlers, src, scan = self.handlers, self.src, self.scan
        max_opcodes = scan.limits.max_opcodes
        steps = 0
        # The hot loop: it reads the source's buffer directly (same module) to stay fast.
        while True:
            buffer, index = src._buf, src._i
            self.op_offset = offset = src._base + index
            if self.frame_end is not None and offset >= self.frame_end:
                self.frame_end = None
            if index < len(buffer):
                code = buffer[index]
                src._i = index + 1
            else:
                code = src.read_byte()
            handler = handlers.get(code)
            if handler is None:
                raise _ScanError(f"invalid pickle opcode 0x{code:02x}", offset)
            scan.opcodes += 1
            if scan.opcodes > max_opcodes:
                raise _LimitExceeded(f"more than {max_opcodes} opcodes (limit)", offset)
            result = handler()
            if self.frame_end is not None and not self.lenient:
                position = src._base + src._i
                if offset < self.frame_end < position:
                    raise _ScanError("an opcode runs across the end of its pickle frame", offset)
                if result is not None and position < self.frame_end:
                    # pickle's Python unpickler drops the rest of the frame; the C one does not.
                    raise _ScanError("data after STOP inside the same pickle frame", offset)
            if result is not None:
                return result[0]
            steps += 1
            if steps & 0xFFF == 0:
                self._check_stack()

    def _check_stack(self):
        if len(self.stack) + self.meta_items + len(self.metastack) > self.scan.limits.max_stack:
            raise _LimitExceeded(f"more than {self.scan.limits.max_stack} values on the pickle stack (limit)",
                                 self.op_offset)

    # -- helpers --

    def fail(self, message: str):
        raise _ScanError(message, self.op_offset)

    def pop(self):
        if not self.stack:
            self.fail("stack underflow" if not self.metastack else "a value was expected but MARK was found")
        return self.stack.pop()

    def top(self):
        if not self.stack:
            self.fail("stack underflow")
        return self.stack[-1]

    def pop_mark(self) -> list:
        if not self.metastack:
            self.fail(_MARK_NEEDED)
        items = self.stack
        self.stack = self.metastack.pop()
        self.meta_items -= len(self.stack)
        return items

    def dangerous(self, label: str, message: str, kind: str):
        self.scan.dangerous(label, message, self.where, self.op_offset, kind=kind)

    def u1(self) -> int:
        return self.src.read_byte()

    def unpack(self, fmt: str, size: int):
        return _STRUCTS[fmt](self.src.read(size))[0]

    def line(self, keep: int = _MAX_NAME) -> bytes | None:
        return self.src.readline(keep)[0]

    def text_line(self) -> str:
        # pickle imports a module and name cut short by the end of the data, then fails.
        data = self.src.readline(_MAX_NAME, partial=True)[0]
        if data is None:
            self.fail("a module or name longer than any real one")
        try:
            return data.decode("utf-8")
        except UnicodeDecodeError:
            self.fail("a module or name that is not UTF-8")

    def memo_index_line(self) -> int:
        data = self.line(_MAX_INT_DIGITS)
        if data is None:
            self.fail("memo index is not a number")
        try:
            return int(data)
        except ValueError:
            self.fail("memo index is not a number")

    def text_value(self, data: bytes | None, decode) -> str | _Sentinel:
        """A string constant; embedded pickles in it are scanned (latin-1, as _codecs.encode makes bytes)."""
        if data is None:
            return LONG_TEXT
        try:
            value = decode(data)
        except (UnicodeDecodeError, ValueError):
            self.fail("a string constant that does not decode")
        if value[:1] in _EMBEDDED_FIRST_CHARS and not self.lenient:
            try:
                self.embedded(value.encode("latin-1"))
            except UnicodeEncodeError:
                self.embedded(data)
        return self.keep_text(value)

    def keep_text(self, value: str) -> str | _Sentinel:
        """The string itself while the memory budget for strings lasts, else an opaque marker."""
        scan = self.scan
        if len(value) > _MAX_TEXT_VALUE or scan.text_bytes + len(value) > scan.limits.max_text_bytes:
            return LONG_TEXT
        scan.text_bytes += len(value)
        return value

    def sized_text(self, length: int, decode) -> str | _Sentinel:
        if length < 0:
            self.fail("negative length")
        if length > self.scan.limits.max_embedded_bytes:
            self.blob_skip(length)
            return LONG_TEXT
        return self.text_value(self.src.read(length), decode)

    def sized_blob(self, length: int):
        if length > self.scan.limits.max_embedded_bytes:
            self.blob_skip(length)
        else:
            self.embedded(self.src.read(length))
        return BLOB

    def blob_skip(self, length: int):
        head = self.src.read(min(length, 512))
        if _looks_like_pickle(head):
            self.scan.note(f"{self.where}: a {length}-byte constant at byte {self.op_offset} starts like a pickle "
                           "but is larger than the embedded-pickle limit; it was not scanned")
        self.src.skip(length - len(head))

    def embedded(self, data: bytes):
        """Scan a bytes constant that is itself a pickle (pickle.loads would run it)."""
        if self.lenient or not _looks_like_pickle(data):
            return
        if self.depth + 1 > self.scan.limits.max_depth:
            raise _LimitExceeded(f"pickles embedded more than {self.scan.limits.max_depth} levels deep (limit)",
                                 self.op_offset)
        where = f"{self.where} > embedded pickle at byte {self.op_offset}"
        source = _Source(io.BytesIO(data), max_bytes=len(data), size=len(data))
        inner = _Machine(self.scan, source, where=where, depth=self.depth + 1)
        self.scan.embedded += 1
        try:
            inner.run_pickle()
        except _LimitExceeded:
            raise
        except _ScanError as error:
            # Only pickle.loads-like loaders (all on the deny-list) run embedded bytes, and
            # they would stop here too: what ran before this point was still recorded.
            self.scan.note(f"{where}: does not parse as a whole pickle ({error.describe()})")

    def new_instance(self, factory, args, *, init: bool) -> _Instance:
        """The object a call or NEWOBJ makes; its __dict__ is followed for joblib wrappers only."""
        cls, attrs = factory, None
        if isinstance(factory, _Global):
            items = _tuple_items(args)
            if factory.key in (("copyreg", "_reconstructor"), ("copyreg", "__newobj__"),
                               ("copyreg", "__newobj_ex__")):
                cls = items[0] if items else None
                # object.__new__(cls): no __init__ runs, unless _reconstructor's base is not object.
                init = factory.key == ("copyreg", "_reconstructor") and not (
                    items and len(items) > 1 and isinstance(items[1], _Global)
                    and items[1].key == ("builtins", "object"))
            if isinstance(cls, _Global) and cls.key in _WRAPPER_CLASSES:
                attrs = {}
                if init:
                    names = ("subclass", "shape", "order", "dtype", "allow_mmap", "numpy_array_alignment_bytes")
                    if cls is factory and items is not None and 4 <= len(items) <= len(names):
                        attrs = {"allow_mmap": False, "numpy_array_alignment_bytes": 16, **dict(zip(names, items))}
                    else:
                        attrs = None
        instance = _Instance(factory, cls, args, attrs)
        if instance.is_wrapper:
            self.scan.wrappers += 1
        elif self.scan.wrappers and self.holds_wrapper(args):
            instance.may_be_wrapper = True
        return instance

    def holds_wrapper(self, value) -> bool:
        """Whether a joblib array wrapper may be among these arguments (followed into containers).

        A container whose items are not all tracked, or one nested beyond what is followed,
        may hold one: fail closed.
        """
        pending, budget = [(value, 0)], 256
        while pending:
            item, depth = pending.pop()
            if isinstance(item, _Instance):
                if item.is_wrapper or item.may_be_wrapper:
                    return True
                continue
            if isinstance(item, _Seq):
                children, complete = item.items, item.complete
            elif isinstance(item, _Map):
                children, complete = [part for pair in item.pairs for part in pair], item.complete
            else:
                continue
            budget -= len(children)
            if not complete or depth >= 8 or budget < 0:
                return True
            pending += [(child, depth + 1) for child in children]
        return False

    def callee_problem(self, func, opname: str) -> bool:
        """Report a call whose callee is not an imported global; True if the walk can go on."""
        if isinstance(func, (_Instance, _Persistent)):
            if self.lenient and isinstance(func, _Instance) and self.allowed_instance(func):
                # Some are callable (sklearn's kernels): a real load goes on, and so does this reading.
                return True
            self.dangerous(f"indirect call ({opname} on {_describe(func)})",
                           f"{opname} calls {_describe(func)}, not an imported global: an obfuscated call",
                           kind="indirect_call")
            return True
        # Constants and containers are not callable: loading stops with a TypeError.
        self.fail(f"{opname} calls {_describe(func)}, which is not callable")

    def call(self, func, args, opname: str):
        if (self.lenient and isinstance(func, _Global) and func.verdict == UNVETTED
                and _importable_name(func.module, func.name) and self.scan.known_package(func.module)):
            # A what-if reading that calls an unvetted import of a package that exists (one the
            # file imports for real, or a model library): a real load would run it.
            self.scan.record_global(func.module, func.name, self.where, self.op_offset)
            self.scan.mark_called(func)
        if not isinstance(func, _Global):
            self.callee_problem(func, opname)
            return self.new_instance(func, args, init=True)
        if func.verdict == _GETTER:
            return self.read_attribute(func, args)
        items = _tuple_items(args)
        if func.key in _IMPORT_GADGETS:
            if items and len(items) == 2 and all(isinstance(item, str) for item in items):
                return self.import_global(items[0], items[1])
            self.dangerous(func.label, f"{func.label} imports a name that is not a constant", kind="unresolved_global")
            return _Global("<unresolved>", func.label, DANGEROUS)
        if not self.lenient:
            self.scan.mark_called(func)
        self.check_construct_only(func, func.label)
        for position in forwarded_positions(func.key):
            argument = items[position] if items and position < len(items) else None
            if not self.lenient:
                self.scan.mark_called(argument)
            if func.key == ("copyreg", "_reconstructor") and position == 1:
                self.check_construct_only(argument, f"copyreg._reconstructor with {_describe(argument)} as base")
            if items is None or not (argument is None or isinstance(argument, (_Global, str))):
                self.dangerous(f"indirect call (through {func.label})",
                               f"{func.label} would call {_describe(argument)} passed as its argument: "
                               "an obfuscated call", kind="indirect_call")
        return self.new_instance(func, args, init=True)

    def check_construct_only(self, value, how: str):
        if isinstance(value, _Global) and value.key in CONSTRUCT_ONLY:
            self.dangerous(f"{value.label} called", f"{how} calls the constructor of {value.label}, which loads a "
                           "model from a file path it is given; files rebuild it without calling it",
                           kind="dangerous_call")

    def import_global(self, module: str, name: str) -> _Global:
        if not self.lenient and _py3_name(module, name) in ATTRIBUTE_GETTERS:
            entry = self.scan.globals.setdefault((module, name), {
                "module": module, "name": name, "verdict": ALLOWED, "count": 0, "called": False})
            entry["count"] += 1
            self.scan.getter_pushes += 1
            return _Global(module, name, _GETTER)
        return self.scan.record_global(module, name, self.where, self.op_offset, hypothetical=self.lenient)

    def read_attribute(self, getter: _Global, args):
        """getattr(class, "name") with constants: the import of class.name; anything else is dangerous."""
        items = _tuple_items(args)
        if (items and len(items) == 2 and isinstance(items[0], _Global) and items[0].verdict in (ALLOWED, UNVETTED)
                and isinstance(items[1], str) and items[1].isidentifier()):
            if not self.lenient:
                self.scan.getter_uses += 1
            return self.import_global(items[0].module, f"{items[0].name}.{items[1]}")
        self.dangerous(getter.label, f"{getter.label} is called on {_describe(args)}, not to read a named attribute "
                       "of an imported class", kind="dangerous_global")
        return self.new_instance(getter, args, init=True)

    def mutate(self, target, what: str):
        if isinstance(target, _Global):
            self.dangerous(target.label, f"{what} modifies the imported object {target.label}", kind="mutates_global")

    # -- opcodes: constants --

    def op_INT(self):
        data = self.line(_MAX_INT_DIGITS)
        if data == b"00":
            self.stack.append(False)
        elif data == b"01":
            self.stack.append(True)
        elif data is None:
            self.stack.append(BIG_INT)
        else:
            try:
                self.stack.append(int(data, 0))
            except ValueError:
                self.fail("INT argument is not a number")

    def op_BININT(self):
        self.stack.append(self.unpack("<i", 4))

    def op_BININT1(self):
        self.stack.append(self.u1())

    def op_BININT2(self):
        self.stack.append(self.unpack("<H", 2))

    def op_LONG(self):
        data = self.line(_MAX_INT_DIGITS)
        if data is None:
            self.stack.append(BIG_INT)
            return
        try:
            self.stack.append(int(data[:-1] if data.endswith(b"L") else data, 0))
        except ValueError:
            self.fail("LONG argument is not a number")

    def op_LONG1(self):
        self.stack.append(pickletools.decode_long(self.src.read(self.u1())))

    def op_LONG4(self):
        length = self.unpack("<i", 4)
        if length < 0:
            self.fail("LONG4 with a negative byte count")
        if length > 256:
            self.src.skip(length)
            self.stack.append(BIG_INT)
        else:
            self.stack.append(pickletools.decode_long(self.src.read(length)))

    def op_STRING(self):
        data = self.line(self.scan.limits.max_embedded_bytes)
        if data is None:
            self.stack.append(LONG_TEXT)
            return
        if len(data) < 2 or data[:1] != data[-1:] or data[:1] not in (b'"', b"'"):
            self.fail("STRING argument is not quoted")
        self.stack.append(self.text_value(data[1:-1], lambda raw: codecs.escape_decode(raw)[0].decode("latin-1")))

    def op_BINSTRING(self):
        self.stack.append(self.sized_text(self.unpack("<i", 4), lambda raw: raw.decode("latin-1")))

    def op_SHORT_BINSTRING(self):
        self.stack.append(self.sized_text(self.u1(), lambda raw: raw.decode("latin-1")))

    def op_BINBYTES(self):
        self.stack.append(self.sized_blob(self.unpack("<I", 4)))

    def op_SHORT_BINBYTES(self):
        self.stack.append(self.sized_blob(self.u1()))

    def op_BINBYTES8(self):
        self.stack.append(self.sized_blob(self.unpack("<Q", 8)))

    def op_BYTEARRAY8(self):
        self.stack.append(self.sized_blob(self.unpack("<Q", 8)))

    def op_UNICODE(self):
        data = self.line(self.scan.limits.max_embedded_bytes)
        self.stack.append(self.text_value(data, lambda raw: raw.decode("raw-unicode-escape")))

    def op_SHORT_BINUNICODE(self):
        data = self.src.read(self.src.read_byte())
        if data[:1] in _EMBEDDED_FIRST_BYTES:
            self.stack.append(self.text_value(data, _decode_utf8))
            return
        try:
            self.stack.append(self.keep_text(data.decode("utf-8", "surrogatepass")))
        except UnicodeDecodeError:
            self.fail("a string constant that does not decode")

    def op_BINUNICODE(self):
        self.stack.append(self.sized_text(self.unpack("<I", 4), _decode_utf8))

    def op_BINUNICODE8(self):
        self.stack.append(self.sized_text(self.unpack("<Q", 8), _decode_utf8))

    def op_NONE(self):
        self.stack.append(None)

    def op_NEWTRUE(self):
        self.stack.append(True)

    def op_NEWFALSE(self):
        self.stack.append(False)

    def op_FLOAT(self):
        data = self.line(_MAX_INT_DIGITS)
        try:
            float(data)
        except (TypeError, ValueError):
            self.fail("FLOAT argument is not a number")
        self.stack.append(FLOAT)

    def op_BINFLOAT(self):
        self.src.read(8)
        self.stack.append(FLOAT)

    # -- opcodes: containers --

    def op_EMPTY_LIST(self):
        self.stack.append(_Seq("list"))

    def op_EMPTY_TUPLE(self):
        self.stack.append(_Seq("tuple"))

    def op_EMPTY_DICT(self):
        self.stack.append(_Map())

    def op_EMPTY_SET(self):
        self.stack.append(_Seq("set"))

    def op_TUPLE(self):
        items = self.pop_mark()
        self.stack.append(_Seq("tuple", items))

    def _tuple_n(self, count: int):
        if len(self.stack) < count:
            self.fail("stack underflow")
        items = self.stack[-count:]
        del self.stack[-count:]
        self.stack.append(_Seq("tuple", items))

    def op_TUPLE1(self):
        self._tuple_n(1)

    def op_TUPLE2(self):
        self._tuple_n(2)

    def op_TUPLE3(self):
        self._tuple_n(3)

    def op_LIST(self):
        items = self.pop_mark()
        self.stack.append(_Seq("list", items))

    def op_DICT(self):
        items = self.pop_mark()
        self.stack.append(_Map(list(zip(items[::2], items[1::2]))))

    def op_FROZENSET(self):
        items = self.pop_mark()
        self.stack.append(_Seq("frozenset", items))

    def _extend(self, items, what: str):
        target = self.top()
        self.mutate(target, what)
        if isinstance(target, _Seq) and not self.lenient:
            target.extend(items)

    def op_APPEND(self):
        value = self.pop()
        self._extend([value], "APPEND")

    def op_APPENDS(self):
        self._extend(self.pop_mark(), "APPENDS")

    def op_ADDITEMS(self):
        self._extend(self.pop_mark(), "ADDITEMS")

    def _set_items(self, pairs, what: str):
        target = self.top()
        self.mutate(target, what)
        if isinstance(target, _Map) and not self.lenient:
            target.update(pairs)

    def op_SETITEM(self):
        value = self.pop()
        key = self.pop()
        self._set_items([(key, value)], "SETITEM")

    def op_SETITEMS(self):
        items = self.pop_mark()
        self._set_items(list(zip(items[::2], items[1::2])), "SETITEMS")

    # -- opcodes: stack and memo --

    def op_POP(self):
        if self.stack:
            self.stack.pop()
        else:
            self.pop_mark()

    def op_POP_MARK(self):
        self.pop_mark()

    def op_DUP(self):
        self.pushed(self.top())
        self.stack.append(self.top())

    def op_MARK(self):
        self.metastack.append(self.stack)
        self.meta_items += len(self.stack)
        self.stack = []
        if len(self.metastack) > self.scan.limits.max_stack:
            raise _LimitExceeded("pickle marks nested deeper than the stack limit", self.op_offset)

    def _get(self, index: int):
        try:
            value = self.memo[index]
        except KeyError:
            self.fail(f"memo entry {index} is read before it is written")
        self.pushed(value)
        self.stack.append(value)

    def pushed(self, value) -> None:
        """A reference copied onto the stack (from the memo, or DUP): getattr's are counted."""
        if isinstance(value, _Global) and value.verdict == _GETTER and not self.lenient:
            self.scan.getter_pushes += 1

    def op_GET(self):
        self._get(self.memo_index_line())

    def op_BINGET(self):
        self._get(self.u1())

    def op_LONG_BINGET(self):
        self._get(self.unpack("<I", 4))

    def _put(self, index: int):
        if index < 0:
            self.fail("negative memo index")
        self.memo[index] = self.top()
        if len(self.memo) > self.scan.limits.max_memo:
            raise _LimitExceeded(f"more than {self.scan.limits.max_memo} memo entries (limit)", self.op_offset)

    def op_PUT(self):
        self._put(self.memo_index_line())

    def op_BINPUT(self):
        self._put(self.u1())

    def op_LONG_BINPUT(self):
        self._put(self.unpack("<I", 4))

    def op_MEMOIZE(self):
        if not self.stack:
            self.fail("stack underflow")
        memo = self.memo
        memo[len(memo)] = self.stack[-1]
        if len(memo) > self.scan.limits.max_memo:
            raise _LimitExceeded(f"more than {self.scan.limits.max_memo} memo entries (limit)", self.op_offset)

    # -- opcodes: imports and calls --

    def op_GLOBAL(self):
        module = self.text_line()
        name = "" if self.src.is_truncated else self.text_line()
        if self.src.is_truncated:
            if module:
                self.import_global(module, name)
            raise _Truncated(self.src.pos)
        self.stack.append(self.import_global(module, name))

    def op_STACK_GLOBAL(self):
        name = self.pop()
        module = self.pop()
        if isinstance(module, str) and isinstance(name, str):
            self.stack.append(self.import_global(module, name))
            return
        for operand in (module, name):
            if not isinstance(operand, str) and not self.may_be_text(operand):
                # Both unpicklers require exact str operands: loading stops here.
                self.fail(f"STACK_GLOBAL with {_describe(operand)} as module or name")
        label = f"{module if isinstance(module, str) else '?'}.{name if isinstance(name, str) else '?'}"
        if not self.lenient:
            self.scan.globals.setdefault(("<unresolved>", label), {
                "module": "<unresolved>", "name": label, "verdict": DANGEROUS, "count": 0})["count"] += 1
        self.dangerous(f"STACK_GLOBAL {label}", f"STACK_GLOBAL imports {label}: the module or name is "
                       f"{_describe(name if isinstance(module, str) else module)}, not a constant string",
                       kind="unresolved_global")
        self.stack.append(_Global("<unresolved>", label, DANGEROUS))

    def may_be_text(self, value) -> bool:
        """Whether a value we cannot read could be a str when the file is really loaded."""
        if value is LONG_TEXT or isinstance(value, _Persistent):
            return True
        if isinstance(value, _Instance):
            if not self.lenient:
                return True
            # A what-if reading: an instance of an allowed class (a joblib wrapper, an array)
            # is no string; what an allowed function (copyreg's reconstructors, numpy's
            # scalar, _codecs.encode) or any other callable returned may be one.
            def never_text_global(value) -> bool:
                return isinstance(value, _Global) and value.verdict == ALLOWED and never_text(value.key)

            return not (never_text_global(value.factory) and (
                value.cls is None or value.cls is value.factory or never_text_global(value.cls)))
        return False

    @staticmethod
    def allowed_instance(value: _Instance) -> bool:
        return isinstance(value.factory, _Global) and value.factory.verdict == ALLOWED and (
            value.cls is None or isinstance(value.cls, _Global) and value.cls.verdict == ALLOWED)

    def _ext(self, code: int):
        if self.lenient:
            # The copyreg registry is empty unless the loading process fills it: there, loading stops.
            self.fail("unregistered extension code")
        self.dangerous(f"extension code {code}", f"EXT opcode imports extension code {code}, which cannot be "
                       "resolved without the loading process's copyreg registry", kind="unresolved_global")
        self.stack.append(_Global("<extension>", str(code), DANGEROUS))

    def op_EXT1(self):
        self._ext(self.u1())

    def op_EXT2(self):
        self._ext(self.unpack("<H", 2))

    def op_EXT4(self):
        self._ext(self.unpack("<i", 4))

    def op_REDUCE(self):
        args = self.pop()
        func = self.top()
        self.stack[-1] = self.call(func, args, "REDUCE")

    def op_INST(self):
        module = self.text_line()
        name = "" if self.src.is_truncated else self.text_line()
        if self.src.is_truncated:
            if module:
                self.import_global(module, name)
            raise _Truncated(self.src.pos)
        cls = self.import_global(module, name)  # pickle imports before it looks for the MARK
        args = _Seq("tuple", self.pop_mark())
        self.stack.append(self.call(cls, args, "INST"))

    def op_OBJ(self):
        items = self.pop_mark()
        if not items:
            self.fail("OBJ without a class")
        self.stack.append(self.call(items[0], _Seq("tuple", items[1:]), "OBJ"))

    def _new(self, cls, args, opname: str):
        if not isinstance(cls, _Global):
            self.callee_problem(cls, opname)
        self.stack.append(self.new_instance(cls, args, init=False))

    def op_NEWOBJ(self):
        args = self.pop()
        cls = self.pop()
        self._new(cls, args, "NEWOBJ")

    def op_NEWOBJ_EX(self):
        self.pop()  # keyword arguments
        args = self.pop()
        cls = self.pop()
        self._new(cls, args, "NEWOBJ_EX")

    def op_BUILD(self):
        state = self.pop()
        instance = self.top()
        self.mutate(instance, "BUILD")
        if not isinstance(instance, _Instance) or self.lenient:
            return
        instance.built += 1
        instance.state = state
        if instance.attrs is not None:
            # pickle's load_build: a dict updates __dict__, a (dict, slots) pair sets both.
            parts = _tuple_items(state) if isinstance(state, _Seq) and state.kind == "tuple" and state.length == 2 \
                else [state]
            for part in parts or [None]:
                if part is None:
                    continue
                if isinstance(part, _Map) and part.complete:
                    for key, value in part.pairs:
                        if isinstance(key, str):
                            instance.attrs[key] = value
                else:
                    instance.attrs = None
                    break
        if self.joblib_arrays and instance.is_wrapper:
            self.joblib_array(instance)
            # joblib puts the array where the wrapper was; the memo still holds the wrapper.
            subclass = instance.attrs.get("subclass")
            self.stack[-1] = _Instance(subclass, subclass, None, None)
        elif self.joblib_arrays and instance.may_be_wrapper:
            self.fail("BUILD on what a call returned when given a joblib array wrapper: joblib may read array "
                      "data here, so where the pickle goes on cannot be determined")

    # -- opcodes: framing, persistence, the rest --

    def op_PROTO(self):
        self.proto = self.u1()
        if self.proto > _HIGHEST_PROTOCOL:
            self.fail(f"unsupported pickle protocol {self.proto}")
        self.scan.protocol = max(self.scan.protocol, self.proto)

    def op_FRAME(self):
        length = self.unpack("<Q", 8)
        if self.frame_end is not None and self.src.pos < self.frame_end and not self.lenient:
            self.fail("a pickle frame starts before the previous one ends")
        # A frame longer than the data still runs in pickle's Python reader: keep walking,
        # the end of the data will fail the scan after what is inside has been seen.
        self.frame_end = self.src.pos + length

    def op_PERSID(self):
        if self.lenient:
            self.fail("plain pickle.load has no persistent_load: loading stops here")
        data = self.line()
        if data is None:
            self.fail("persistent id longer than any real one")
        self.stack.append(_Persistent(data))

    def op_BINPERSID(self):
        if self.lenient:
            self.fail("plain pickle.load has no persistent_load: loading stops here")
        pid = self.pop()
        if self.collect_persistent_ids:
            if len(self.scan.persistent_ids) >= self.scan.limits.max_memo:
                raise _LimitExceeded("too many persistent ids (limit)", self.op_offset)
            self.scan.persistent_ids.append(pid)
            # torch's legacy persistent_load answers ("module", cls, source file, source) with
            # cls itself: the class of a saved nn.Module, imported in the id like any global.
            items = _tuple_items(pid)
            if items and len(items) == 4 and items[0] == "module" and isinstance(items[1], _Global):
                self.pushed(items[1])
                self.stack.append(items[1])
                return
        self.stack.append(_Persistent(pid))

    def op_NEXT_BUFFER(self):
        self.stack.append(OPAQUE)

    def op_READONLY_BUFFER(self):
        self.top()

    def op_STOP(self):
        return (self.pop(),)

    def op_unsupported(self):
        self.fail("an opcode newer than this scanner knows")

    # -- joblib --

    def joblib_array(self, wrapper: _Instance):
        """Skip the raw bytes joblib's NumpyUnpickler reads right after this BUILD."""
        start = self.src.pos
        if self.frame_end is not None and start < self.frame_end:
            self.fail("joblib array data inside a pickle frame: the pickle and joblib would disagree on "
                      "where the array ends")
        self.frame_end = None
        attrs = wrapper.attrs
        if attrs is None:
            self.fail("joblib NumpyArrayWrapper with a state that cannot be read statically")
        shape, dtype, alignment = attrs.get("shape"), attrs.get("dtype"), attrs.get("numpy_array_alignment_bytes")
        if not isinstance(attrs.get("subclass"), _Global):
            self.fail("joblib NumpyArrayWrapper whose array class is not an imported global")
        dims = _tuple_items(shape)
        if dims is None or not all(isinstance(dim, int) and not isinstance(dim, bool) for dim in dims):
            self.fail("joblib NumpyArrayWrapper with a shape that is not a tuple of integers")
        count = 1
        for dim in dims:
            count *= dim
        if any(dim < 0 for dim in dims) or count >= 2**63:
            self.fail("joblib NumpyArrayWrapper with an invalid shape")
        itemsize, has_object = _dtype_layout(dtype, self.fail)
        if self.plain_views:
            self.plain_view(start)
        self.scan.arrays += 1
        if has_object:
            # joblib unpickles object arrays with a fresh Unpickler on the same file.
            inner = _Machine(self.scan, self.src, where=f"{self.where} > object array at byte {start}",
                             depth=self.depth)
            inner.run_pickle()
            return
        if alignment is not None:
            if not isinstance(alignment, int):
                self.fail("joblib NumpyArrayWrapper with an invalid alignment")
            self.src.skip(self.src.read_byte())
        if count and itemsize <= 0:
            self.fail("joblib array with a zero-sized dtype")
        self.scan.array_bytes += count * itemsize
        self.src.skip(count * itemsize)

    def plain_view(self, offset: int):
        """Walk the bytes after a wrapper as plain pickle.load would: as more opcodes."""
        with self.src.view_from(offset) as source:
            view = _Machine(self.scan, source, where=f"{self.where} > joblib array bytes at byte {offset} read as "
                            "opcodes (plain pickle.load)", depth=self.depth, lenient=True,
                            memo=ChainMap({}, self.memo))
            view.stack = list(self.stack)
            view.metastack = [list(level) for level in self.metastack]
            view.frame_end = None
            view.continue_lenient()

    def continue_lenient(self):
        """Walk from the current state until the first error or STOP; only findings matter."""
        handlers, src, scan = self.handlers, self.src, self.scan
        while True:
            self.op_offset = src.pos
            try:
                code = src.read_byte()
                handler = handlers.get(code)
                if handler is None:
                    return
                scan.opcodes += 1
                if scan.opcodes > scan.limits.max_opcodes:
                    raise _LimitExceeded(f"more than {scan.limits.max_opcodes} opcodes (limit)", self.op_offset)
                if handler() is not None:
                    return
            except _LimitExceeded:
                raise
            except _ScanError:
                return


def _decode_utf8(data: bytes) -> str:
    return data.decode("utf-8", "surrogatepass")


def _dtype_layout(dtype, fail) -> tuple[int, bool]:
    """(itemsize, hasobject) of a pickled numpy.dtype, as numpy would set them, or fail."""
    if not (isinstance(dtype, _Instance) and isinstance(dtype.factory, _Global) and dtype.factory.key in _NUMPY_DTYPE):
        fail("joblib NumpyArrayWrapper whose dtype is not a pickled numpy.dtype")
    args = _tuple_items(dtype.args)
    if not args or not isinstance(args[0], str):
        fail("numpy.dtype with arguments that cannot be read statically")
    match = re.fullmatch(r"[<>|=]?([biufcmMOSUV])(\d*)", args[0])
    if not match:
        fail(f"numpy.dtype {args[0]!r} is not a form numpy itself pickles")
    kind, digits = match.group(1), match.group(2)
    has_object = kind == "O"
    state = dtype.state
    element_size = None
    if state is not None:
        items = _tuple_items(state)
        if not items or items[0] not in (3, 4) or len(items) != (8 if items[0] == 3 else 9):
            fail("numpy.dtype with a state this scanner does not know")
        element_size, flags = items[5], items[7]
        if not isinstance(flags, int) or not isinstance(element_size, int):
            fail("numpy.dtype with a state that cannot be read statically")
        # numpy trusts the pickled flags for dtype.hasobject, and so does joblib's reader.
        has_object = bool(flags & 1)
    if kind in "SUV":
        if element_size is not None:
            if element_size < 0:
                fail("numpy.dtype with a negative element size")
            return element_size, has_object
        if not digits:
            fail("numpy.dtype without a size")
        return int(digits) * (4 if kind == "U" else 1), has_object
    if kind in "mMO":
        return 8, has_object
    if not digits or int(digits) not in (1, 2, 4, 8, 10, 12, 16, 32):
        fail(f"numpy.dtype {args[0]!r} has no valid size")
    return int(digits), has_object


_PICKLE_START = re.compile(rb"\(?[ci][A-Za-z_][\w.]*\n")
# First bytes of a string constant that may hold a pickle: PROTO (or its UTF-8 form), or
# the GLOBAL/INST/MARK that protocols 0 and 1 start with.
_EMBEDDED_FIRST_BYTES = {b"\x80", b"\xc2", b"c", b"i", b"("}
_EMBEDDED_FIRST_CHARS = {"\x80", "c", "i", "("}


def _looks_like_pickle(data: bytes) -> bool:
    if len(data) >= 2 and data[0] == 0x80 and 2 <= data[1] <= 5:
        return True
    return bool(_PICKLE_START.match(data[:_MAX_NAME]))


