"""Model manifests (SPEC §4): which files make up a version, and a frozen form a consumer
can check every byte against.

The manifest lists the version's formats that have a file, then its external files (stored
elsewhere: registry/external_files.py), split into required files (a consumer fetches them
when it loads the manifest) and optional ones (fetched on first use). The frozen manifest
adds each file's MD5 and SHA-256, a timestamp, and a `lock_checksum`: the MD5 of the
canonical JSON of everything else, so a consumer can tell when the manifest itself was edited.

Canonical JSON is `json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False)`
encoded as UTF-8; the Python client computes it the same way.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from datetime import datetime, timezone as dt_timezone

from django.utils import timezone

from registry.errors import Conflict
from registry.models import Format, FormatStatus, Version

URI_SCHEME = "registry"


class NotFreezable(Conflict):
    code = "not_freezable"


class NothingToFreeze(Conflict):
    """A version none of whose formats has a file: an empty frozen manifest would vouch for nothing."""

    code = "no_files"


# A file in these states is still on its way to `ready` (the workers have it); any other state
# short of ready is final until someone acts (uploads again, approves imports).
WAITING_STATUSES = {FormatStatus.UPLOADED, FormatStatus.HASHING, FormatStatus.INTROSPECTING}
MESSAGE_SHOWN = 200


def source_uri(version: Version, kind: str) -> str:
    return f"{URI_SCHEME}://{version.model.context.slug}/{version.model_id}/versions/{version.number}/formats/{kind}"


def canonical_json(value) -> bytes:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def lock_checksum(manifest: dict) -> str:
    """MD5 of the canonical JSON of the manifest without its lock_checksum."""
    rest = {key: value for key, value in manifest.items() if key != "lock_checksum"}
    return hashlib.md5(canonical_json(rest), usedforsecurity=False).hexdigest()


def _entry(version: Version, fmt: Format, *, frozen: bool) -> dict:
    entry = {
        "name": fmt.kind,
        "source_uri": source_uri(version, fmt.kind),
        "fail_on_tamper": fmt.fail_on_tamper,
        "filename": fmt.original_filename,
        "size": fmt.size,
    }
    if frozen:
        entry["md5_checksum"] = fmt.md5
        entry["sha256_checksum"] = fmt.sha256
    return entry


def _external_entry(item: dict) -> dict:
    """An external file (registry/external_files.py) as a manifest lists it: its checksums were
    declared by whoever added it, so they are listed live and frozen alike."""
    return {
        "name": item["name"],
        "source_uri": item["source_uri"],
        "fail_on_tamper": item["fail_on_tamper"],
        "filename": item["filename"],
        "size": item["size"],
        "external": True,
        "md5_checksum": item["md5_checksum"],
        "sha256_checksum": item["sha256_checksum"],
    }


def build(version: Version, formats: Iterable[Format], *, frozen: bool = False,
          now: datetime | None = None) -> dict:
    """The manifest of `version` from its formats (only those with a file are listed).

    A frozen manifest vouches for bytes, so every listed file must be `ready`: hashed,
    checked against what the client declared, and introspected without a finding.
    """
    files = [fmt for fmt in formats if fmt.has_file]
    if frozen:
        if not files:
            raise NothingToFreeze(f"Version {version.number} has no file to freeze: upload one first.",
                                  field="frozen")
        unready = [fmt for fmt in files if fmt.status != FormatStatus.READY or not fmt.sha256]
        if unready:
            raise NotFreezable(_unready_message(unready), field="frozen")
    manifest = {
        "context": version.model.context.slug,
        "model_id": str(version.model_id),
        "model_name": version.model.name,
        "version": version.number,
        "required_files": [_entry(version, fmt, frozen=frozen) for fmt in files if fmt.required]
        + [_external_entry(item) for item in version.external_files if item["required"]],
        "optional_files": [_entry(version, fmt, frozen=frozen) for fmt in files if not fmt.required]
        + [_external_entry(item) for item in version.external_files if not item["required"]],
    }
    if frozen:
        moment = (now or timezone.now()).astimezone(dt_timezone.utc)
        manifest["timestamp"] = moment.isoformat().replace("+00:00", "Z")
        manifest["lock_checksum"] = lock_checksum(manifest)
    return manifest


def _unready_message(unready: list[Format]) -> str:
    """Why a frozen manifest is refused: a file still being checked is a wait; a corrupt,
    quarantined, failed or review file is not, and says why."""
    waiting = [fmt for fmt in unready if fmt.status in WAITING_STATUSES or not fmt.sha256]
    final = [fmt for fmt in unready if fmt not in waiting]
    parts = []
    if final:
        listed = "; ".join(
            f"{fmt.kind} ({fmt.status})" + (f": {fmt.status_message[:MESSAGE_SHOWN]}" if fmt.status_message else "")
            for fmt in final
        )
        parts.append(f"these files will not become ready as they are: {listed}")
    if waiting:
        listed = ", ".join(f"{fmt.kind} ({fmt.status})" for fmt in waiting)
        parts.append(f"still being checked: {listed} (try again once the workers are done)")
    return "A frozen manifest needs every file hashed and ready; " + "; ".join(parts) + "."
