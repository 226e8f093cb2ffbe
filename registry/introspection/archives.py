"""Reading untrusted zip archives without trusting them.

Every archive is validated as a whole before any member is read: member count, declared
sizes, compression ratio, names (no "..", absolute paths or drive letters), member types
(no symlinks or device files), duplicates (also where case is ignored) and overlapping
entries. Members are then read as streams in bounded chunks, or spooled to an anonymous
temporary file when a reader needs to seek. The inspectors never extract. For a caller that needs files on disk, `extracted()`
writes only inside a fresh tempfile.TemporaryDirectory, checking every resolved path and
creating files exclusively, and removes everything on exit.

Status decisions (see ArchiveError):
- QUARANTINED for structures that only a crafted archive has and that attack the tool that
  unpacks it: path traversal, absolute paths, drive letters, symlinks and device files,
  duplicate names, overlapping entries, compression ratios of a zip bomb, data prepended to
  the archive (polyglot files).
- FAILED for archives that cannot be read within the limits or at all: not a zip, corrupt,
  encrypted, unknown compression, too many members, too much data, nested too deep; and for
  archives that cannot be extracted faithfully: two members whose names are equal once case
  is folded (score.py and SCORE.PY: on Windows or macOS one overwrites the other), or a file
  named like another member's folder.
Either way the format cannot be published.
"""

import os
import re
import shutil
import stat
import struct
import tempfile
import unicodedata
import zipfile
from contextlib import contextmanager
from dataclasses import dataclass

from registry.introspection.report import FAILED, QUARANTINED

CHUNK_SIZE = 1024 * 1024
SUPPORTED_COMPRESSION = {zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED, zipfile.ZIP_BZIP2, zipfile.ZIP_LZMA}
ZIP_MAGIC = b"PK\x03\x04"
EMPTY_ZIP_MAGIC = b"PK\x05\x06"
_DRIVE_LETTER = re.compile(r"^[A-Za-z]:")
_CONTROL_CHARACTERS = re.compile(r"[\x00-\x1f\x7f]")
_CENTRAL_DIRECTORY_ENTRY_SIZE = 46  # fixed part of one central directory record
_LOCAL_HEADER_SIZE = 30


@dataclass(frozen=True)
class ArchiveLimits:
    max_members: int = 2000
    max_total_uncompressed: int = 32 * 1024**3  # summed over nested archives too
    max_ratio: float = 100.0  # uncompressed / compressed, per member
    ratio_min_size: int = 1024 * 1024  # small members may compress well legitimately
    max_depth: int = 2  # zips inside zips: the outer archive is depth 0
    max_name_length: int = 1024
    max_central_directory_bytes: int = 16 * 1024 * 1024


DEFAULT_LIMITS = ArchiveLimits()


class ArchiveError(Exception):
    """An archive we refuse to read. `status` is QUARANTINED or FAILED (see module docstring)."""

    def __init__(self, status: str, reason: str, *, member: str | None = None, code: str = "invalid"):
        super().__init__(reason)
        self.status = status
        self.reason = reason
        self.member = member
        self.code = code


class _Budget:
    """Uncompressed bytes declared by an archive and every archive nested in it."""

    def __init__(self, limit: int):
        self.limit = limit
        self.used = 0

    def spend(self, amount: int, where: str):
        self.used += amount
        if self.used > self.limit:
            raise ArchiveError(
                FAILED,
                f"{where}: archive declares more than {self.limit} uncompressed bytes in total",
                code="too_large",
            )


def _file_size(fileobj) -> int:
    return fileobj.seek(0, os.SEEK_END)


def _end_of_central_directory(fileobj, size: int) -> tuple[int, int]:
    """Return (declared entry count, central directory size) without building any ZipInfo.

    zipfile.ZipFile parses the whole central directory into objects; a crafted archive could
    declare millions of entries, so the count is checked first.
    """
    tail_size = min(size, 22 + 65535)
    fileobj.seek(size - tail_size)
    tail = fileobj.read(tail_size)
    index = tail.rfind(EMPTY_ZIP_MAGIC)
    if index < 0 or index + 22 > len(tail):
        raise ArchiveError(FAILED, "not a zip archive (no end of central directory record)", code="not_zip")
    (_, _, _, _, entries, cd_size, cd_offset, _) = struct.unpack("<4s4H2LH", tail[index:index + 22])
    if entries == 0xFFFF or cd_size == 0xFFFFFFFF or cd_offset == 0xFFFFFFFF:
        # Zip64: the locator sits just before the end record and points at the zip64 end record.
        locator_at = index - 20
        if locator_at >= 0 and tail[locator_at:locator_at + 4] == b"PK\x06\x07":
            (_, _, zip64_offset, _) = struct.unpack("<4sLQL", tail[locator_at:locator_at + 20])
            if zip64_offset + 56 > size:
                raise ArchiveError(FAILED, "corrupt zip64 end record", code="corrupt")
            fileobj.seek(zip64_offset)
            record = fileobj.read(56)
            if record[:4] != b"PK\x06\x06":
                raise ArchiveError(FAILED, "corrupt zip64 end record", code="corrupt")
            entries, cd_size = struct.unpack("<QQ", record[32:48])
    return entries, cd_size


def check_member_name(name: str) -> str | None:
    """Why this member name is unsafe to extract anywhere, or None."""
    if not name:
        return "empty member name"
    if "\x00" in name or _CONTROL_CHARACTERS.search(name):
        return "member name contains control characters"
    if name.startswith(("/", "\\")):
        return "absolute path"
    if _DRIVE_LETTER.match(name):
        return "path with a drive letter"
    # Windows tools treat a backslash as a separator, so check both.
    parts = re.split(r"[\\/]", name)
    if ".." in parts:
        return "path escapes the archive (..)"
    return None


def _member_type_problem(info: zipfile.ZipInfo) -> str | None:
    mode = info.external_attr >> 16
    if not mode:
        return None  # DOS attributes only: a plain file or directory
    if stat.S_ISLNK(mode):
        return "symbolic link"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode) or stat.S_ISFIFO(mode) or stat.S_ISSOCK(mode):
        return "device, fifo or socket entry"
    return None


def normalized_name(name: str) -> str:
    return name.replace("\\", "/")


def folded_name(name: str) -> str:
    """The path a case-insensitive file system (Windows, macOS) makes of a member name.

    Case folded, in NFC (macOS stores names decomposed), with empty and "." segments dropped
    ("a//b" and "a/./b" are "a/b" everywhere).
    """
    parts = [part for part in normalized_name(name).split("/") if part not in ("", ".")]
    return unicodedata.normalize("NFC", "/".join(parts)).casefold()


class SafeZip:
    """A validated zip archive. Construct with a seekable binary file; raises ArchiveError."""

    def __init__(self, fileobj, *, limits: ArchiveLimits = DEFAULT_LIMITS, depth: int = 0,
                 budget: _Budget | None = None, label: str = "archive"):
        if depth > limits.max_depth:
            raise ArchiveError(
                FAILED, f"{label}: zip archives nested more than {limits.max_depth} levels deep",
                code="too_deep",
            )
        self.limits = limits
        self.depth = depth
        self.label = label
        self._budget = budget or _Budget(limits.max_total_uncompressed)
        self._fileobj = fileobj
        size = _file_size(fileobj)
        fileobj.seek(0)
        magic = fileobj.read(4)
        if magic not in (ZIP_MAGIC, EMPTY_ZIP_MAGIC):
            entries, _ = _end_of_central_directory(fileobj, size)
            if entries:
                raise ArchiveError(
                    QUARANTINED, f"{label}: data before the zip archive (a file that is two formats at once)",
                    code="polyglot",
                )
        entries, cd_size = _end_of_central_directory(fileobj, size)
        if entries > limits.max_members:
            raise ArchiveError(
                FAILED, f"{label}: {entries} members, more than the limit of {limits.max_members}",
                code="too_many_members",
            )
        if cd_size > limits.max_central_directory_bytes:
            raise ArchiveError(
                FAILED, f"{label}: central directory of {cd_size} bytes is larger than the limit",
                code="too_many_members",
            )
        fileobj.seek(0)
        try:
            self._zip = zipfile.ZipFile(fileobj)
        except (
            zipfile.BadZipFile, zipfile.LargeZipFile, ValueError, OSError, EOFError, struct.error,
            NotImplementedError,  # e.g. "zip file version 25.2" or an unknown compression method
        ) as error:
            raise ArchiveError(FAILED, f"{label}: not a readable zip archive ({error})", code="corrupt") from error
        try:
            self._validate(size)
        except ArchiveError:
            self._zip.close()
            raise

    def _validate(self, size: int):
        limits, label = self.limits, self.label
        infos = self._zip.infolist()
        if len(infos) > limits.max_members:
            raise ArchiveError(
                FAILED, f"{label}: {len(infos)} members, more than the limit of {limits.max_members}",
                code="too_many_members",
            )
        seen = set()
        total = 0
        for info in infos:
            name = info.filename
            if len(name) > limits.max_name_length:
                raise ArchiveError(FAILED, f"{label}: member name longer than {limits.max_name_length} characters",
                                   code="name_too_long")
            problem = check_member_name(name)
            if problem:
                raise ArchiveError(QUARANTINED, f"{label}: unsafe member {name!r}: {problem}", member=name,
                                   code="unsafe_path")
            problem = _member_type_problem(info)
            if problem:
                raise ArchiveError(QUARANTINED, f"{label}: unsafe member {name!r}: {problem}", member=name,
                                   code="unsafe_type")
            key = normalized_name(name).rstrip("/")
            if key in seen:
                raise ArchiveError(
                    QUARANTINED, f"{label}: member {name!r} appears twice (tools disagree on which copy wins)",
                    member=name, code="duplicate",
                )
            seen.add(key)
            if info.flag_bits & 0x1:
                raise ArchiveError(FAILED, f"{label}: member {name!r} is encrypted and cannot be inspected",
                                   member=name, code="encrypted")
            if info.compress_type not in SUPPORTED_COMPRESSION:
                raise ArchiveError(FAILED, f"{label}: member {name!r} uses unsupported compression "
                                   f"method {info.compress_type}", member=name, code="unsupported")
            if info.header_offset + _LOCAL_HEADER_SIZE + info.compress_size > size:
                raise ArchiveError(FAILED, f"{label}: member {name!r} runs past the end of the file",
                                   member=name, code="corrupt")
            if info.file_size > limits.ratio_min_size:
                ratio = info.file_size / max(info.compress_size, 1)
                if ratio > limits.max_ratio:
                    raise ArchiveError(
                        QUARANTINED,
                        f"{label}: member {name!r} expands {ratio:.0f} times ({info.compress_size} to "
                        f"{info.file_size} bytes), a zip bomb",
                        member=name, code="zip_bomb",
                    )
            total += info.file_size
        self._budget.spend(total, label)
        self._check_case_collisions(infos)
        self._check_overlaps(infos)
        if infos and min(info.header_offset for info in infos) != 0:
            raise ArchiveError(QUARANTINED, f"{label}: data before the zip archive "
                               "(a file that is two formats at once)", code="polyglot")

    def _check_case_collisions(self, infos):
        # Extracted where case is ignored, two such members are one file (one overwrites the
        # other: which score.py is deployed would depend on the machine), and a file named like
        # another member's folder cannot be created at all.
        members: dict[str, str] = {}
        folders: dict[str, str] = {}  # folded folder -> a member inside it
        for info in infos:
            key = folded_name(info.filename)
            first = members.setdefault(key, info.filename)
            if first != info.filename:
                raise ArchiveError(
                    FAILED, f"{self.label}: members {first!r} and {info.filename!r} are the same file where case "
                    "is ignored (Windows, macOS): extracting one would overwrite the other",
                    member=info.filename, code="case_collision",
                )
            parts = key.split("/")
            for depth in range(1, len(parts)):
                folders.setdefault("/".join(parts[:depth]), info.filename)
        for info in infos:
            key = folded_name(info.filename)
            if not info.is_dir() and key in folders:
                raise ArchiveError(
                    FAILED, f"{self.label}: member {info.filename!r} is a file, but {folders[key]!r} needs a folder "
                    "of that name (case ignored): the archive cannot be extracted",
                    member=info.filename, code="case_collision",
                )

    def _check_overlaps(self, infos):
        # Each entry takes at least its local header, its name and its compressed data. If the
        # next entry starts before that, two entries share bytes: the shape of the
        # "overlapping files" zip bomb, which no ordinary tool produces.
        ordered = sorted(infos, key=lambda info: info.header_offset)
        for current, following in zip(ordered, ordered[1:]):
            minimum_end = (current.header_offset + _LOCAL_HEADER_SIZE
                           + len(current.orig_filename.encode("utf-8", "surrogateescape")) + current.compress_size)
            if following.header_offset < minimum_end:
                raise ArchiveError(
                    QUARANTINED,
                    f"{self.label}: members {current.filename!r} and {following.filename!r} overlap",
                    member=following.filename, code="overlap",
                )

    # --- reading ---------------------------------------------------------------------------

    def close(self):
        self._zip.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        self.close()

    def infos(self) -> list[zipfile.ZipInfo]:
        return self._zip.infolist()

    def files(self) -> list[zipfile.ZipInfo]:
        return [info for info in self._zip.infolist() if not info.is_dir()]

    def names(self) -> list[str]:
        return [normalized_name(info.filename) for info in self.files()]

    def get(self, name: str) -> zipfile.ZipInfo | None:
        for info in self.files():
            if normalized_name(info.filename) == name:
                return info
        return None

    def listing(self, limit: int = 1000) -> list[dict]:
        return [
            {"name": normalized_name(info.filename), "size": info.file_size, "compressed_size": info.compress_size}
            for info in self.files()[:limit]
        ]

    def iter_chunks(self, info: zipfile.ZipInfo, chunk_size: int = CHUNK_SIZE):
        """Yield the member's bytes in chunks; never more than its declared size."""
        remaining = info.file_size
        try:
            with self._zip.open(info) as stream:
                while True:
                    chunk = stream.read(min(chunk_size, max(remaining, 0) + 1))
                    if not chunk:
                        break
                    remaining -= len(chunk)
                    if remaining < 0:
                        raise ArchiveError(FAILED, f"{self.label}: member {info.filename!r} is larger than declared",
                                           member=info.filename, code="corrupt")
                    yield chunk
        except (zipfile.BadZipFile, OSError, EOFError, ValueError, RuntimeError, NotImplementedError) as error:
            # Includes CRC mismatches: a member whose data does not match its headers.
            raise ArchiveError(FAILED, f"{self.label}: member {info.filename!r} is corrupt ({error})",
                               member=info.filename, code="corrupt") from error
        except Exception as error:  # zlib.error, lzma.LZMAError and friends
            if isinstance(error, ArchiveError):
                raise
            raise ArchiveError(FAILED, f"{self.label}: member {info.filename!r} is corrupt ({error})",
                               member=info.filename, code="corrupt") from error

    def read_small(self, info: zipfile.ZipInfo, max_bytes: int) -> bytes:
        """The whole member, for small text files only (runtime.yaml, score.py, schemas)."""
        if info.file_size > max_bytes:
            raise ArchiveError(FAILED, f"{self.label}: member {info.filename!r} is larger than {max_bytes} bytes",
                               member=info.filename, code="too_large")
        return b"".join(self.iter_chunks(info))

    def read_head(self, info: zipfile.ZipInfo, count: int) -> bytes:
        """The first `count` bytes of a member, without decompressing the rest."""
        try:
            with self._zip.open(info) as stream:
                return stream.read(min(count, info.file_size))
        except Exception as error:
            raise ArchiveError(FAILED, f"{self.label}: member {info.filename!r} is corrupt ({error})",
                               member=info.filename, code="corrupt") from error

    @contextmanager
    def open_member(self, info: zipfile.ZipInfo):
        """The member as a seekable stream, decompressed as it is read: for readers that stop early.

        zipfile never reads past the member's declared size and checks its CRC at the end; a
        seek backwards decompresses again from the start, and seeking to the end reads it all.
        """
        try:
            stream = self._zip.open(info)
        except Exception as error:
            raise ArchiveError(FAILED, f"{self.label}: member {info.filename!r} is corrupt ({error})",
                               member=info.filename, code="corrupt") from error
        with stream:
            yield stream

    @contextmanager
    def spool(self, info: zipfile.ZipInfo):
        """The member copied, chunk by chunk, to an anonymous temporary file (deleted on exit).

        The temporary file has no name taken from the archive (it has no name at all on POSIX),
        so nothing is ever written where an archive member says.
        """
        with tempfile.TemporaryFile(prefix="registry-member-") as spooled:
            for chunk in self.iter_chunks(info):
                spooled.write(chunk)
            spooled.flush()
            spooled.seek(0)
            yield spooled

    @contextmanager
    def open_nested(self, info: zipfile.ZipInfo):
        """A nested zip member as a SafeZip one level deeper, sharing this archive's size budget."""
        label = f"{self.label}/{normalized_name(info.filename)}" if self.depth else normalized_name(info.filename)
        if self.depth + 1 > self.limits.max_depth:
            raise ArchiveError(
                FAILED, f"{label}: zip archives nested more than {self.limits.max_depth} levels deep",
                member=info.filename, code="too_deep",
            )
        with self.spool(info) as spooled:
            nested = SafeZip(spooled, limits=self.limits, depth=self.depth + 1, budget=self._budget, label=label)
            try:
                yield nested
            finally:
                nested.close()

    def extract_to(self, directory: str) -> list[str]:
        """Extract every member under `directory`, which must be a temporary directory.

        Names were validated on open; each target path is also resolved and checked to be inside
        `directory` before anything is written, and files are created exclusively (never
        following or overwriting an existing entry).
        """
        root = os.path.realpath(directory)
        temp_root = os.path.realpath(tempfile.gettempdir())
        if os.path.commonpath([root, temp_root]) != temp_root:
            raise ValueError("extract_to only writes inside the system temporary directory")
        written = []
        for info in self.infos():
            relative = normalized_name(info.filename)
            target = os.path.realpath(os.path.join(root, relative))
            if os.path.commonpath([root, target]) != root or target == root and not info.is_dir():
                raise ArchiveError(QUARANTINED, f"{self.label}: member {info.filename!r} resolves outside "
                                   "the extraction directory", member=info.filename, code="unsafe_path")
            if info.is_dir():
                os.makedirs(target, exist_ok=True)
                continue
            os.makedirs(os.path.dirname(target), exist_ok=True)
            if os.path.realpath(os.path.dirname(target)) != os.path.dirname(target):
                raise ArchiveError(QUARANTINED, f"{self.label}: member {info.filename!r} resolves outside "
                                   "the extraction directory", member=info.filename, code="unsafe_path")
            descriptor = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0), 0o600)
            with os.fdopen(descriptor, "wb") as output:
                for chunk in self.iter_chunks(info):
                    output.write(chunk)
            written.append(relative)
        return written


@contextmanager
def extracted(safe_zip: SafeZip):
    """Extract into a fresh TemporaryDirectory, removed on exit with everything in it."""
    with tempfile.TemporaryDirectory(prefix="registry-extract-") as directory:
        try:
            safe_zip.extract_to(directory)
            yield directory
        finally:
            shutil.rmtree(directory, ignore_errors=True)
