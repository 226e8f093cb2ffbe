"""External files (SPEC §4): a manifest entry pointing at a file the registry does not store
(`s3://bucket/key`, `gs://bucket/key`, `https://host/path`, `data://owner/path`), given with
its checksums. The registry never fetches it; a consumer fetches it and checks its SHA-256
(required), MD5 and size, as it checks the registry's own files.

`clean_external_files` validates what a client sends; the answer to anything it refuses is a
400 naming the entry and the rule, and nothing is written.
"""

from __future__ import annotations

import re
from pathlib import PurePosixPath
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from registry import jsoninput
from registry.errors import InvalidInput
from registry.models import FormatKind

FIELD = "external_files"
SCHEMES = ("s3", "gs", "https", "data")  # an allow-list: any other scheme is refused
MAX_EXTERNAL_FILES = 100
MAX_URI_LENGTH = 2000
NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
SHA256 = re.compile(r"^[0-9a-fA-F]{64}$")
MD5 = re.compile(r"^[0-9a-fA-F]{32}$")
KEYS = {"name", "source_uri", "sha256_checksum", "md5_checksum", "size", "filename", "required", "fail_on_tamper"}
# Query parameters that carry a credential or a signature (presigned S3/GCS/Azure URLs, tokens):
# a manifest is read by everyone who may see the model and lives on in frozen copies.
CREDENTIAL_PARAMETERS = {
    "x-amz-credential", "x-amz-signature", "x-amz-security-token", "awsaccesskeyid", "signature",
    "x-goog-credential", "x-goog-signature", "googleaccessid", "sig", "se", "sv", "token", "access_token",
    "api_key", "apikey", "key", "password", "secret", "auth",
}


def clean_external_files(value: Any) -> list[dict]:
    """The external files of a version, in their stored form (see the module docstring)."""
    if value is None:
        return []
    if not isinstance(value, list):
        raise InvalidInput("'external_files' must be a list of files, each "
                           '{"name", "source_uri", "sha256_checksum", ...}.', field=FIELD)
    if len(value) > MAX_EXTERNAL_FILES:
        raise InvalidInput(f"A version lists at most {MAX_EXTERNAL_FILES} external files.", field=FIELD)
    cleaned, names = [], set()
    for index, item in enumerate(value):
        entry = _clean_entry(item, where=f"external_files[{index}]")
        if entry["name"].casefold() in names:
            raise InvalidInput(f"external_files[{index}]: the name '{entry['name']}' is used twice.", field=FIELD)
        names.add(entry["name"].casefold())
        cleaned.append(entry)
    return cleaned


def _clean_entry(item: Any, *, where: str) -> dict:
    if not isinstance(item, dict):
        raise InvalidInput(f"{where} must be an object with name, source_uri and sha256_checksum.", field=FIELD)
    unknown = sorted(set(item) - KEYS)
    if unknown:
        raise InvalidInput(f"{where}: unknown key {unknown[0]!r}; an external file has {', '.join(sorted(KEYS))}.",
                           field=FIELD)
    name = item.get("name")
    if not isinstance(name, str) or not NAME.match(name):
        raise InvalidInput(f"{where}: 'name' must be 1-64 letters, digits, '.', '_' or '-', starting with a letter "
                           "or digit.", field=FIELD)
    if name.lower() in FormatKind.values:
        raise InvalidInput(f"{where}: '{name}' is a format kind; a manifest names the registry's files by kind, so "
                           "give the external file another name.", field=FIELD)
    uri = clean_source_uri(item.get("source_uri"), where=where)
    sha256 = item.get("sha256_checksum")
    if not isinstance(sha256, str) or not SHA256.match(sha256):
        raise InvalidInput(f"{where}: 'sha256_checksum' is required: the file's SHA-256 as 64 hex digits.",
                           field=FIELD)
    md5 = item.get("md5_checksum", "") or ""
    if not isinstance(md5, str) or (md5 and not MD5.match(md5)):
        raise InvalidInput(f"{where}: 'md5_checksum' must be 32 hex digits (or left out).", field=FIELD)
    size = item.get("size")
    if size is not None and (not isinstance(size, int) or isinstance(size, bool) or not 0 <= size < 2**63):
        raise InvalidInput(f"{where}: 'size' must be the file's size in bytes (an integer, 0 or more).", field=FIELD)
    filename = _clean_filename(item.get("filename"), uri, name, where=where)
    flags = {}
    for flag in ("required", "fail_on_tamper"):
        flag_value = item.get(flag, True)
        if not isinstance(flag_value, bool):
            raise InvalidInput(f"{where}: '{flag}' must be true or false.", field=FIELD)
        flags[flag] = flag_value
    return {"name": name, "source_uri": uri, "sha256_checksum": sha256.lower(), "md5_checksum": md5.lower(),
            "size": size, "filename": filename, **flags}


def clean_source_uri(value: Any, *, where: str) -> str:
    """An external file's URI: an allowed scheme, a place, no credentials."""
    if not isinstance(value, str) or not value.strip():
        raise InvalidInput(f"{where}: 'source_uri' is required, e.g. s3://bucket/models/weights.bin.", field=FIELD)
    if len(value) > MAX_URI_LENGTH:
        raise InvalidInput(f"{where}: 'source_uri' can have at most {MAX_URI_LENGTH} characters.", field=FIELD)
    if jsoninput.bad_character(value) or any(ch.isspace() or ord(ch) < 32 or ord(ch) == 127 for ch in value):
        raise InvalidInput(f"{where}: 'source_uri' contains spaces or control characters.", field=FIELD)
    try:
        parts = urlsplit(value)
        parts.port  # noqa: B018 - raises ValueError for a port that is not a number
    except ValueError:
        raise InvalidInput(f"{where}: 'source_uri' is not a valid URI.", field=FIELD) from None
    scheme = parts.scheme.lower()
    if scheme not in SCHEMES:
        shown = f"'{parts.scheme}://'" if parts.scheme else "no scheme"
        raise InvalidInput(f"{where}: 'source_uri' has {shown}; an external file is one of "
                           f"{', '.join(s + '://' for s in SCHEMES)} (the registry's own files are listed by kind).",
                           field=FIELD)
    if parts.username is not None or parts.password is not None or "@" in parts.netloc:
        raise InvalidInput(f"{where}: 'source_uri' carries credentials (user:password@); a manifest is readable by "
                           "everyone who sees the model. Give them to the consumer's fetcher instead.", field=FIELD)
    found = [key for key, _ in parse_qsl(parts.query, keep_blank_values=True)
             if key.lower() in CREDENTIAL_PARAMETERS]
    if found:
        raise InvalidInput(f"{where}: 'source_uri' carries a credential or signature in its query ({found[0]}); "
                           "a manifest is readable by everyone who sees the model and presigned URLs expire. Give "
                           "credentials to the consumer's fetcher instead.", field=FIELD)
    if not parts.hostname or not parts.path.strip("/"):
        raise InvalidInput(f"{where}: 'source_uri' must name a {'host' if scheme == 'https' else 'bucket'} and a "
                           f"path, e.g. {scheme}://{'example.com' if scheme == 'https' else 'bucket'}/models/weights.bin.",
                           field=FIELD)
    if parts.fragment:
        raise InvalidInput(f"{where}: 'source_uri' cannot have a fragment (#...).", field=FIELD)
    return f"{scheme}:{value[len(parts.scheme) + 1:]}"


def _clean_filename(value: Any, uri: str, name: str, *, where: str) -> str:
    """The local file name a consumer keeps the file under: a bare name, never a path."""
    if value in (None, ""):
        value = PurePosixPath(urlsplit(uri).path).name
    if not isinstance(value, str) or len(value) > 255:
        raise InvalidInput(f"{where}: 'filename' must be a file name of at most 255 characters.", field=FIELD)
    if "/" in value or "\\" in value or value in (".", "..") or jsoninput.bad_character(value) \
            or any(ord(ch) < 32 for ch in value):
        raise InvalidInput(f"{where}: 'filename' must be a bare file name, without a folder.", field=FIELD)
    return value or name
