"""A small reader for the protobuf wire format, for files too large or too untrusted to hand
to a full protobuf parser in one piece.

It reads fields one by one from a byte range of a seekable file (or from bytes), so a caller
can descend into the messages it cares about and skip the rest (weights, graph definitions)
without ever holding them in memory.
"""

from dataclasses import dataclass

VARINT, I64, LEN, SGROUP, EGROUP, I32 = 0, 1, 2, 3, 4, 5
MAX_FIELD_NUMBER = (1 << 29) - 1


class ProtoError(ValueError):
    """The bytes are not valid protobuf wire format."""


@dataclass(frozen=True)
class Span:
    start: int
    length: int

    @property
    def end(self) -> int:
        return self.start + self.length


@dataclass(frozen=True)
class Field:
    number: int
    wire_type: int
    value: int | Span  # an int for VARINT/I64/I32 (raw, unsigned), a Span for LEN


class Source:
    """Positional reads from a seekable binary file or from bytes."""

    def __init__(self, data_or_file):
        if isinstance(data_or_file, (bytes, bytearray, memoryview)):
            self._data = bytes(data_or_file)
            self._file = None
            self.size = len(self._data)
        else:
            self._data = None
            self._file = data_or_file
            self.size = data_or_file.seek(0, 2)

    def pread(self, position: int, count: int) -> bytes:
        if self._data is not None:
            return self._data[position:position + count]
        self._file.seek(position)
        return self._file.read(count)


def decode_varint(buffer: bytes, index: int = 0) -> tuple[int, int]:
    """Return (value, index after the varint). At most 10 bytes, as protobuf allows."""
    result = 0
    shift = 0
    for offset in range(10):
        if index + offset >= len(buffer):
            raise ProtoError("truncated varint")
        byte = buffer[index + offset]
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return result, index + offset + 1
        shift += 7
    raise ProtoError("varint longer than 10 bytes")


def encode_varint(value: int) -> bytes:
    if value < 0:
        value += 1 << 64
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def signed64(value: int) -> int:
    return value - (1 << 64) if value >= 1 << 63 else value


def iter_fields(source: Source, start: int = 0, end: int | None = None):
    """Yield every Field in [start, end). LEN payloads are not read, only located."""
    end = source.size if end is None else end
    if end > source.size:
        raise ProtoError("message runs past the end of the file")
    position = start
    while position < end:
        head = source.pread(position, min(20, end - position))
        tag, index = decode_varint(head)
        number, wire_type = tag >> 3, tag & 7
        if number == 0 or number > MAX_FIELD_NUMBER:
            raise ProtoError(f"invalid field number {number} at byte {position}")
        if wire_type == VARINT:
            value, index = decode_varint(head, index)
            field = Field(number, wire_type, value)
            position += index
        elif wire_type == I64:
            if index + 8 > len(head):
                raise ProtoError("truncated fixed64 field")
            field = Field(number, wire_type, int.from_bytes(head[index:index + 8], "little"))
            position += index + 8
        elif wire_type == I32:
            if index + 4 > len(head):
                raise ProtoError("truncated fixed32 field")
            field = Field(number, wire_type, int.from_bytes(head[index:index + 4], "little"))
            position += index + 4
        elif wire_type == LEN:
            length, index = decode_varint(head, index)
            payload_start = position + index
            if payload_start + length > end:
                raise ProtoError(f"field {number} claims {length} bytes, past the end of its message")
            field = Field(number, wire_type, Span(payload_start, length))
            position = payload_start + length
        else:
            # Groups (3, 4) are long deprecated and unused by the formats read here; 6 and 7 do not exist.
            raise ProtoError(f"unsupported wire type {wire_type} at byte {position}")
        if position > end:
            raise ProtoError("field runs past the end of its message")
        yield field


def read_span(source: Source, span: Span, limit: int) -> bytes:
    if span.length > limit:
        raise ProtoError(f"field of {span.length} bytes is larger than the {limit}-byte limit")
    data = source.pread(span.start, span.length)
    if len(data) != span.length:
        raise ProtoError("truncated field")
    return data


def read_string(source: Source, span: Span, limit: int = 1 << 20) -> str:
    return read_span(source, span, limit).decode("utf-8", errors="replace")


def encode_field_header(number: int, wire_type: int) -> bytes:
    return encode_varint((number << 3) | wire_type)


def encode_len_field(number: int, payload: bytes) -> bytes:
    return encode_field_header(number, LEN) + encode_varint(len(payload)) + payload


def encode_scalar_field(field: Field) -> bytes:
    header = encode_field_header(field.number, field.wire_type)
    if field.wire_type == VARINT:
        return header + encode_varint(field.value)
    if field.wire_type == I64:
        return header + field.value.to_bytes(8, "little")
    return header + field.value.to_bytes(4, "little")
