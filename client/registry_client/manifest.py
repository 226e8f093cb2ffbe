"""Model manifests (SPEC §4): load a version's files with tamper checks.

A frozen manifest lists a version's files with their MD5 and SHA-256, a timestamp, and a
`lock_checksum`: the MD5 of the canonical JSON (sorted keys, no spaces, UTF-8) of the rest.

`Manifest.load(path_or_dict, registry)`:

1. checks the lock checksum: a manifest edited after freezing is always a TamperError
   (its own `fail_on_tamper` flags could have been edited too, so they cannot excuse it);
2. fetches every required file at once (`eager=True`); optional ones on first
   `get_model(name)`;
3. verifies each file's size, SHA-256 and MD5 against the manifest. A mismatch (or a
   listed file the registry cannot serve) is reported to the registry, then raises
   TamperError if the file's `fail_on_tamper` is set, else warns (TamperWarning).

An entry whose `source_uri` is not `registry://` is an external file (`s3://`, `gs://`,
`https://`, `data://`): the registry does not store it, so it is fetched by the fetcher for its
scheme (registry_client/fetchers.py) and checked against the entry's own checksums, which a
live manifest lists too (they were declared when the file was added).

Files are kept in a cache keyed by SHA-256 (`$REGISTRY_CACHE_DIR`, default
`~/.cache/registry-client/files/<sha256[:2]>/<sha256>/<filename>`), so a second
`get_model` costs no download. A cached copy was fully hashed when it entered the cache; on
a later hit it is trusted if its size and modification time are unchanged since then, and
hashed again otherwise (`rehash_cache=True` always hashes it again). A cached copy that no
longer matches is discarded and downloaded again.

Offline (`offline=True`, REGISTRY_OFFLINE=1), the cache is the only source: each cached copy is
hashed again before it is served, and a file that is not there (or no longer matches) raises
NotCached; the registry is never contacted, not even to report tamper.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import tempfile
import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from registry_client import config, fetchers, transfer
from registry_client._http import segment
from registry_client.errors import (
    Conflict,
    NotCached,
    NotFound,
    OfflineError,
    RegistryError,
    TamperError,
    TamperWarning,
)

if TYPE_CHECKING:
    from registry_client.client import Registry

SOURCE_URI = re.compile(r"^registry://(?P<context>[^/]+)/(?P<model>[^/]+)/versions/(?P<number>\d+)/formats/(?P<kind>[^/]+)$")
MARKER = ".verified.json"


def canonical_json(value: Any) -> bytes:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def lock_checksum(data: Mapping) -> str:
    """The MD5 of the canonical JSON of a manifest without its lock_checksum."""
    rest = {key: value for key, value in data.items() if key != "lock_checksum"}
    return hashlib.md5(canonical_json(rest), usedforsecurity=False).hexdigest()


@dataclass(frozen=True)
class ManifestFile:
    """One file of a manifest. `name` is the format kind, or an external file's name
    (`external`: stored elsewhere, fetched from `source_uri`)."""

    name: str
    source_uri: str
    required: bool
    fail_on_tamper: bool
    filename: str
    size: int | None
    md5: str
    sha256: str
    external: bool = False

    @classmethod
    def parse(cls, entry: Any, *, required: bool) -> ManifestFile:
        if not isinstance(entry, Mapping) or not isinstance(entry.get("name"), str) \
                or not isinstance(entry.get("source_uri"), str):
            raise ValueError("Not a model manifest: every file needs a name and a source_uri.")
        size = entry.get("size")
        return cls(
            name=entry["name"], source_uri=entry["source_uri"], required=required,
            fail_on_tamper=entry.get("fail_on_tamper", True) is not False,
            filename=_safe_filename(entry.get("filename"), entry["name"]),
            size=size if isinstance(size, int) and not isinstance(size, bool) else None,
            md5=str(entry.get("md5_checksum") or "").lower(), sha256=str(entry.get("sha256_checksum") or "").lower(),
            external=not entry["source_uri"].startswith("registry://"),
        )


def _safe_filename(value: Any, kind: str) -> str:
    """A cache file name: the uploaded name without any directory part, never '.' or '..'."""
    name = Path(str(value or "").replace("\\", "/")).name if value else ""
    if name in ("", ".", "..") or name.startswith(MARKER):
        name = f"model.{kind}"
    return name


class Manifest:
    """A model manifest and the local copies of its files.

    Build one with `Manifest.load(...)` (checks and fetches) or `version.freeze(path)`.
    `files` maps each name (format kind) to its `ManifestFile`; `paths` holds the local
    paths fetched so far.
    """

    def __init__(self, data: Mapping, registry: Registry | None = None, *, cache_dir: str | os.PathLike | None = None,
                 rehash_cache: bool = False, progress: bool | None = None, offline: bool | None = None):
        if not isinstance(data, Mapping) or not isinstance(data.get("required_files"), list) \
                or not isinstance(data.get("optional_files", []), list):
            raise ValueError("Not a model manifest: required_files and optional_files must be lists.")
        self.data = dict(data)
        if registry is None:
            from registry_client.client import Registry

            registry = Registry(offline=offline)
        self.registry = registry
        self.cache_dir = Path(cache_dir or registry.cache_dir or config.cache_dir())
        # Offline, the cache is the only source: a cached copy is hashed again before it is served.
        self.offline = registry.offline if offline is None else offline
        self.rehash_cache = rehash_cache or self.offline
        self.progress = registry.progress if progress is None else progress
        self.files: dict[str, ManifestFile] = {}
        for key, required in (("required_files", True), ("optional_files", False)):
            for entry in self.data.get(key, []):
                item = ManifestFile.parse(entry, required=required)
                self.files[item.name] = item
        self.paths: dict[str, Path] = {}

    def __repr__(self) -> str:
        state = "frozen" if self.frozen else "live"
        return (f"<Manifest {self.data.get('context')}/{self.data.get('model_name')} v{self.data.get('version')} "
                f"{state}: {', '.join(self.files) or 'no files'}>")

    # --- reading --------------------------------------------------------------------------
    @classmethod
    def load(cls, source: str | os.PathLike | Mapping, registry: Registry | None = None, *, eager: bool = True,
             cache_dir: str | os.PathLike | None = None, rehash_cache: bool = False,
             progress: bool | None = None, offline: bool | None = None) -> Manifest:
        """Read a manifest (a JSON file or a dict), check its lock checksum, and with `eager`
        fetch and verify every required file. `offline` (default: the registry's, or
        $REGISTRY_OFFLINE): serve only verified cached files, NotCached for any other."""
        data = source if isinstance(source, Mapping) else json.loads(Path(source).read_text(encoding="utf-8"))
        manifest = cls(data, registry, cache_dir=cache_dir, rehash_cache=rehash_cache, progress=progress,
                       offline=offline)
        manifest.verify_lock()
        if eager:
            manifest.fetch_required()
        return manifest

    @property
    def frozen(self) -> bool:
        return "lock_checksum" in self.data

    @property
    def model_id(self) -> str:
        return str(self.data.get("model_id", ""))

    @property
    def version(self) -> int:
        return int(self.data.get("version") or 0)

    @property
    def required_files(self) -> list[ManifestFile]:
        return [f for f in self.files.values() if f.required]

    @property
    def optional_files(self) -> list[ManifestFile]:
        return [f for f in self.files.values() if not f.required]

    def verify_lock(self) -> None:
        """Raise TamperError (after reporting it) if the manifest was changed after freezing."""
        if not self.frozen:
            return
        expected = str(self.data.get("lock_checksum") or "").lower()
        actual = lock_checksum(self.data)
        if expected == actual:
            return
        message = (f"The manifest of {self.data.get('model_name')} v{self.data.get('version')} was changed after it "
                   f"was frozen: lock checksum {expected or '(empty)'} expected, {actual} computed.")
        self._report(file="", reason="lock_mismatch", expected=expected, actual=actual, detail=message,
                     fail_on_tamper=True)
        raise TamperError(message, file="", reason="lock_mismatch", expected=expected, actual=actual)

    def save(self, path: str | os.PathLike) -> Path:
        """Write the manifest as JSON (atomically). Formatting does not affect the lock checksum."""
        target = Path(path)
        target.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile("w", encoding="utf-8", dir=target.parent, prefix=f".{target.name}.",
                                         suffix=".tmp", delete=False) as handle:
            json.dump(self.data, handle, indent=2, ensure_ascii=False)
            handle.write("\n")
        os.replace(handle.name, target)
        return target

    # --- fetching -------------------------------------------------------------------------
    def fetch_required(self) -> dict[str, Path]:
        """Fetch and verify every required file (what `load` does by default)."""
        for item in self.required_files:
            self.get_model(item.name)
        return dict(self.paths)

    def get_model(self, name: str) -> Path:
        """The local path of the file `name` (a format kind), fetched and verified on first use."""
        item = self.files.get(name)
        if item is None:
            raise KeyError(f"No file {name!r} in the manifest; it lists: {', '.join(self.files) or 'nothing'}.")
        known = self.paths.get(name)
        if known is not None and known.exists():
            return known
        sha256, md5, size = item.sha256, item.md5, item.size
        if item.external and not sha256:
            raise ValueError(f"The external file {name!r} ({item.source_uri}) has no sha256_checksum in the manifest: "
                             "it cannot be verified, so it is not fetched.")
        if not sha256 and self.offline:
            raise OfflineError(f"Offline mode: the {name} file cannot be checked without a frozen manifest "
                               "(this one has no checksums); freeze the version while online.")
        if not sha256:  # a live (unfrozen) manifest: check against the registry's current digests
            sha256, md5, size = self._current_digests(item)
        path = self._from_cache(item, sha256, size)
        if path is None and self.offline:
            raise self._not_cached(item, sha256)
        path = path or self._download(item, sha256, md5, size)
        self.paths[name] = path
        return path

    def _url_path(self, item: ManifestFile) -> str:
        match = SOURCE_URI.match(item.source_uri)
        if not match:
            raise ValueError(f"Unsupported source_uri {item.source_uri!r}: expected "
                             "registry://<context>/<model-id>/versions/<n>/formats/<kind>.")
        return (f"models/{segment(match['model'])}/versions/{int(match['number'])}/formats/"
                f"{segment(match['kind'])}/file")

    def _current_digests(self, item: ManifestFile) -> tuple[str, str, int | None]:
        format_path = self._url_path(item).removesuffix("/file") + "/"
        data = self.registry._transport.get(format_path)
        sha256 = data.get("sha256") or ""
        if not sha256:
            raise NotFound(f"The registry has not hashed the {item.name} file yet (status {data.get('status')}); "
                           "freeze the manifest once it is ready.", status=404)
        return sha256, data.get("md5") or "", data.get("size")

    # cache ------------------------------------------------------------------------------
    def _cache_folder(self, sha256: str) -> Path:
        return self.cache_dir / "files" / sha256[:2] / sha256

    def _from_cache(self, item: ManifestFile, sha256: str, size: int | None) -> Path | None:
        folder = self._cache_folder(sha256)
        path = folder / item.filename
        if not path.is_file():
            sibling = next((p for p in folder.glob("*") if p.is_file() and not p.name.startswith(".")), None) \
                if folder.is_dir() else None
            if sibling is None or not self._cached_copy_ok(sibling, sha256, size):
                return None
            with contextlib.suppress(OSError):  # same bytes under another name: share them
                os.link(sibling, path)
                self._write_marker(path)
            return path if path.is_file() else sibling
        return path if self._cached_copy_ok(path, sha256, size) else None

    def _cached_copy_ok(self, path: Path, sha256: str, size: int | None) -> bool:
        stat = path.stat()
        if size is not None and stat.st_size != size:
            self._drop(path, "its size changed")
            return False
        if not self.rehash_cache:
            marker = _read_marker(path)
            if marker.get(path.name) == [stat.st_size, stat.st_mtime_ns]:
                return True
        if transfer.hash_file(path, md5=False).sha256 != sha256:
            self._drop(path, "its content changed")
            return False
        self._write_marker(path)
        return True

    def _drop(self, path: Path, why: str) -> None:
        warnings.warn(f"The cached copy {path} was discarded ({why}); downloading it again.", RuntimeWarning,
                      stacklevel=4)
        with contextlib.suppress(FileNotFoundError):
            path.unlink()

    def _write_marker(self, path: Path) -> None:
        marker_path = path.parent / MARKER
        marker = _read_marker(path)
        stat = path.stat()
        marker[path.name] = [stat.st_size, stat.st_mtime_ns]
        with tempfile.NamedTemporaryFile("w", dir=path.parent, prefix=".marker.", delete=False) as handle:
            json.dump(marker, handle)
        os.replace(handle.name, marker_path)

    # download ---------------------------------------------------------------------------
    def _fetch_external(self, item: ManifestFile, target: Path, size: int | None) -> transfer.Downloaded:
        """Fetch an external file into a temporary file beside `target`, hashing it on the way;
        returned unverified, like transfer.download_to's."""
        fetch = fetchers.fetcher_for(item.source_uri)
        target.parent.mkdir(parents=True, exist_ok=True)
        handle = tempfile.NamedTemporaryFile(dir=target.parent, prefix=f".{target.name}.", suffix=".part", delete=False)
        bar = transfer.progress_bar(transfer.want_progress(self.progress), size, f"fetching {item.filename}")
        writer = _HashingWriter(handle, bar)
        try:
            fetch(item.source_uri, writer)
            handle.flush()
            os.fsync(handle.fileno())
        except BaseException:
            handle.close()
            with contextlib.suppress(FileNotFoundError):
                os.unlink(handle.name)
            raise
        finally:
            bar.close()
        handle.close()
        return transfer.Downloaded(Path(handle.name), writer.sha256.hexdigest(), writer.md5.hexdigest(), writer.size)

    def _download(self, item: ManifestFile, sha256: str, md5: str, size: int | None) -> Path:
        target = self._cache_folder(sha256) / item.filename
        if item.external:  # its source's errors are its own (FetchError, NoFetcher), not the registry's
            return self._verified(item, self._fetch_external(item, target, size), target, sha256, md5, size)
        try:
            got = transfer.download_to(self.registry._transport, self._url_path(item), target,
                                       progress=transfer.want_progress(self.progress), expected_size=size,
                                       description=f"downloading {item.filename}")
        except Conflict as exc:
            raise self._corrupt_or(exc, item, sha256) from exc
        except NotFound as exc:
            message = f"The {item.name} file listed in the manifest cannot be fetched: {exc.message}"
            self._report(file=item.name, reason="missing_file", expected=sha256, actual="", detail=message,
                         fail_on_tamper=item.fail_on_tamper)
            if item.fail_on_tamper:
                raise TamperError(message, file=item.name, reason="missing_file", expected=sha256) from exc
            warnings.warn(message, TamperWarning, stacklevel=3)
            raise
        return self._verified(item, got, target, sha256, md5, size)

    def _verified(self, item: ManifestFile, got: transfer.Downloaded, target: Path, sha256: str, md5: str,
                  size: int | None) -> Path:
        """Place a received file in the cache if it matches the manifest; else report the tamper
        and raise TamperError (fail_on_tamper) or warn and keep it under its own digest."""
        problem = None
        if got.sha256 != sha256:
            problem = ("SHA-256", sha256, got.sha256)
        elif md5 and got.md5 != md5:
            problem = ("MD5", md5, got.md5)
        elif size is not None and got.size != size:
            problem = ("size", str(size), str(got.size))
        if problem is None:
            path = transfer.place(got.path, target)
            self._write_marker(path)
            return path
        algorithm, expected, actual = problem
        message = (f"Tamper detected: the {item.name} file ({item.filename}) of {self.data.get('model_name')} "
                   f"v{self.data.get('version')} does not match the manifest's {algorithm}: expected {expected}, "
                   f"got {actual}.")
        digest_expected, digest_actual = (sha256, got.sha256) if algorithm != "MD5" else (md5, got.md5)
        self._report(file=item.name, reason="checksum_mismatch", expected=digest_expected, actual=digest_actual,
                     detail=message, fail_on_tamper=item.fail_on_tamper)
        if item.fail_on_tamper:
            transfer.discard(got.path)
            raise TamperError(message, file=item.name, reason="checksum_mismatch", expected=digest_expected,
                              actual=digest_actual)
        warnings.warn(message, TamperWarning, stacklevel=4)
        # Keep what was received, addressed by its own digest, never under the expected one.
        elsewhere = self._cache_folder(got.sha256) / item.filename
        elsewhere.parent.mkdir(parents=True, exist_ok=True)
        path = transfer.place(got.path, elsewhere)
        self._write_marker(path)
        return path

    def _corrupt_or(self, refusal: Conflict, item: ManifestFile, sha256: str) -> RegistryError:
        """A download the registry refused (409 not_ready): a file it found corrupt is tamper,
        not a wait; any other refusal stays as it came."""
        if refusal.code != "not_ready":
            return refusal
        status = self.registry._transport.get(self._url_path(item).removesuffix("/file") + "/").get("status")
        if status != "corrupt":
            return refusal
        return TamperError(f"Tamper detected by the registry: the {item.name} file ({item.filename}) of "
                           f"{self.data.get('model_name')} v{self.data.get('version')} is corrupt: its stored bytes "
                           "no longer match their checksum. Nothing was downloaded.",
                           file=item.name, reason="corrupt", expected=sha256)

    def _not_cached(self, item: ManifestFile, sha256: str) -> NotCached:
        return NotCached(f"Offline mode: the {item.name} file ({item.filename}, SHA-256 {sha256}) of "
                         f"{self.data.get('model_name')} v{self.data.get('version')} is not in the cache "
                         f"{self.cache_dir}, or its cached copy no longer matched and was discarded. Load the "
                         "manifest once online (or unset REGISTRY_OFFLINE) to fetch it.",
                         file=item.name, sha256=sha256)

    def _report(self, **fields) -> None:
        if self.offline:
            warnings.warn("Offline mode: the tamper event is not reported to the registry.", RuntimeWarning,
                          stacklevel=3)
            return
        model_id, version = self.data.get("model_id"), self.data.get("version")
        if not model_id or not isinstance(version, int):
            warnings.warn("The manifest names no model and version: the tamper event cannot be reported.",
                          RuntimeWarning, stacklevel=3)
            return
        self.registry.report_tamper(str(model_id), version, **fields)


class _HashingWriter:
    """A write-only, non-seekable file object that hashes what a fetcher writes (so a fetcher such
    as boto3's writes its parts in order) and passes it on to the temporary file."""

    def __init__(self, handle, bar):
        self._handle, self._bar = handle, bar
        self.sha256, self.md5 = hashlib.sha256(), hashlib.md5(usedforsecurity=False)
        self.size = 0

    def write(self, data) -> int:
        data = bytes(data)
        self._handle.write(data)
        self.sha256.update(data)
        self.md5.update(data)
        self.size += len(data)
        self._bar.update(len(data))
        return len(data)

    def seekable(self) -> bool:
        return False

    def writable(self) -> bool:
        return True

    def flush(self) -> None:
        self._handle.flush()


def _read_marker(path: Path) -> dict:
    try:
        data = json.loads((path.parent / MARKER).read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}
