"""A tiny pickle assembler: each helper returns the opcodes that push one value.

Nothing here unpickles. `body` values are opcode strings that leave exactly one value on the
stack; `pickle_of(body)` adds the protocol header and STOP.
"""

from __future__ import annotations

import pickletools
import struct

MARK, STOP, POP, DUP, TUPLE, LIST, DICT = b"(", b".", b"0", b"2", b"t", b"l", b"d"
REDUCE, BUILD, SETITEM, SETITEMS, APPEND, APPENDS = b"R", b"b", b"s", b"u", b"a", b"e"
EMPTY_DICT, EMPTY_LIST, EMPTY_TUPLE, NONE = b"}", b"]", b")", b"N"
NEWTRUE, NEWFALSE, TUPLE1, TUPLE2, TUPLE3 = b"\x88", b"\x89", b"\x85", b"\x86", b"\x87"
NEWOBJ, NEWOBJ_EX, STACK_GLOBAL, MEMOIZE, OBJ = b"\x81", b"\x92", b"\x93", b"\x94", b"o"

# What every payload does when it runs: create a file in the working directory.
MARKER = "pwned-by-pickle"
SHELL = f"touch {MARKER}"
PYTHON = f"open({MARKER!r}, 'w').close()"


def proto(number: int) -> bytes:
    return b"\x80" + bytes([number])


def global_(module: str, name: str) -> bytes:
    """GLOBAL: protocol 0's import, module and name on two lines."""
    return b"c" + module.encode("utf-8") + b"\n" + name.encode("utf-8") + b"\n"


def text(value: str) -> bytes:
    """BINUNICODE (protocol 1+)."""
    data = value.encode("utf-8", "surrogatepass")
    return b"X" + struct.pack("<I", len(data)) + data


def short_text(value: str) -> bytes:
    """SHORT_BINUNICODE (protocol 4)."""
    data = value.encode("utf-8")
    return b"\x8c" + bytes([len(data)]) + data


def text0(value: str) -> bytes:
    """UNICODE (protocol 0): raw-unicode-escape up to a newline."""
    return b"V" + value.encode("raw-unicode-escape") + b"\n"


def string0(value: str) -> bytes:
    """STRING (protocol 0): a quoted Python 2 str."""
    return b"S" + repr(value).encode("ascii") + b"\n"


def binstring(value: bytes) -> bytes:
    """BINSTRING / SHORT_BINSTRING: a Python 2 str, decoded by Python 3 as ASCII or latin-1."""
    if len(value) < 256:
        return b"U" + bytes([len(value)]) + value
    return b"T" + struct.pack("<i", len(value)) + value


def blob(value: bytes) -> bytes:
    """BINBYTES (protocol 3+)."""
    return b"B" + struct.pack("<I", len(value)) + value


def integer(value: int) -> bytes:
    if 0 <= value < 256:
        return b"K" + bytes([value])
    if -2**31 <= value < 2**31:
        return b"J" + struct.pack("<i", value)
    return b"L" + str(value).encode() + b"L\n"


def tuple_(*items: bytes) -> bytes:
    return MARK + b"".join(items) + TUPLE


def list_(*items: bytes) -> bytes:
    return MARK + b"".join(items) + LIST


def dict_(*pairs: tuple[bytes, bytes]) -> bytes:
    return MARK + b"".join(key + value for key, value in pairs) + DICT


def call(func: bytes, *args: bytes) -> bytes:
    """func(*args) with REDUCE."""
    return func + tuple_(*args) + REDUCE


def attr(obj: bytes, name: str) -> bytes:
    """getattr(obj, name), through builtins.getattr."""
    return call(global_("builtins", "getattr"), obj, text(name))


def method(obj: bytes, name: str, *args: bytes) -> bytes:
    """obj.name(*args): getattr, then REDUCE on the bound method."""
    return call(attr(obj, name), *args)


def imported(module: str) -> bytes:
    """__import__(module)."""
    return call(global_("builtins", "__import__"), text(module))


def pickle_of(body: bytes, protocol: int = 2) -> bytes:
    return (proto(protocol) if protocol >= 2 else b"") + body + STOP


def body_of(data: bytes) -> bytes | None:
    """The opcodes of a single pickle without its PROTO/FRAME header and STOP, or None when the
    stream is something else (several pickles, frames, memo use: it cannot be spliced safely)."""
    try:
        ops = list(pickletools.genops(data))
    except Exception:
        return None
    if not ops or ops[-1][0].name != "STOP" or ops[-1][2] + 1 != len(data):
        return None
    if any(op.name in ("FRAME", "MEMOIZE", "PUT", "BINPUT", "LONG_BINPUT", "GET", "BINGET", "LONG_BINGET")
           for op, _, _ in ops):
        return None
    start = ops[1][2] if ops[0][0].name == "PROTO" else 0
    return data[start:ops[-1][2]]
