"""The object API: Registry → Context → Model → Version → Artifact, Record.

Each object wraps the JSON the registry returned for it: every field of that JSON is an
attribute (`model.tags`, `version.status`, `artifact.sha256`), `.data` is the raw dict, and
`.refresh()` reads it again. Methods call the REST API (SPEC §5) and raise the typed errors
of `registry_client.errors`.
"""

from __future__ import annotations

import os
import re
import time
import uuid
import warnings
from collections.abc import Iterable, Iterator, Mapping
from datetime import date, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from registry_client import transfer
from registry_client._http import Transport, logger, segment
from registry_client.config import load_settings
from registry_client.errors import Conflict, NotFound, RegistryError, TamperError, TamperWarning

FINAL_OK = {"ready"}
# Final states short of ready: a file in review waits for a person (a publisher approving its
# imports), not for the workers, so waiting longer would not help.
FINAL_BAD = {"review", "corrupt", "quarantined", "failed"}
MAX_METRICS_PER_CALL = 10_000

if TYPE_CHECKING:
    from registry_client.manifest import Manifest


def _is_uuid(value: Any) -> bool:
    if isinstance(value, uuid.UUID):
        return True
    try:
        uuid.UUID(str(value))
    except ValueError:
        return False
    return True


def _review_message(artifact) -> str:
    names = [item.get("import", "?") for item in artifact.data.get("unvetted_imports") or []]
    shown = ", ".join(names) if names else artifact.data.get("status_message") or "see its report"
    return (f"The {artifact.kind} file needs review: it imports third-party code that is not on the registry's "
            f"allow-list nor trusted in this context ({shown}). A publisher must approve these imports "
            f"(the dashboard's Formats tab, or Version.approve_imports) before the version can be published.")


class _Resource:
    """A JSON object from the API with attribute access to its fields."""

    _registry: Registry
    data: dict

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_") or name == "data":
            raise AttributeError(name)
        try:
            return self.data[name]
        except KeyError:
            raise AttributeError(f"{type(self).__name__} has no attribute or field {name!r}") from None

    def __eq__(self, other: object) -> bool:
        return type(other) is type(self) and self._key() == other._key()  # type: ignore[attr-defined]

    def __hash__(self) -> int:
        return hash((type(self).__name__, self._key()))

    def _key(self) -> Any:
        return self.data.get("id")


# --- registry ---------------------------------------------------------------------------

class Registry:
    """A connection to one registry.

    `url` and `token` default to REGISTRY_URL / REGISTRY_TOKEN, then to the config file
    (see `registry_client.config`). `retries` and `retry_backoff` (seconds, doubled each
    time) govern retries of transient failures; `progress` forces progress bars on or off
    (default: on when stderr is a terminal); `cache_dir` is where manifest downloads are
    kept (default $REGISTRY_CACHE_DIR or ~/.cache/registry-client).
    """

    def __init__(self, url: str | None = None, token: str | None = None, *, timeout: float = 60.0,
                 retries: int = 5, retry_backoff: float = 0.5, progress: bool | None = None,
                 cache_dir: str | os.PathLike | None = None, verify: bool | str = True):
        settings = load_settings(url, token)
        self.url = settings.url
        self.progress = progress
        self.cache_dir = Path(cache_dir) if cache_dir is not None else None
        self._transport = Transport(settings.url, settings.token, timeout=timeout, retries=retries,
                                    retry_backoff=retry_backoff, verify=verify)

    def __repr__(self) -> str:
        return f"Registry({self.url!r})"

    def __enter__(self) -> Registry:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        self._transport.close()

    # contexts -------------------------------------------------------------------------
    def contexts(self) -> list[Context]:
        """The contexts (team workspaces) you have a role in."""
        return [Context(self, item) for item in self._transport.paginate("contexts/")]

    def context(self, slug: str) -> Context:
        """One context by its slug (NotFound if it does not exist or you have no role in it)."""
        return Context(self, self._transport.get(f"contexts/{segment(slug)}/"))

    # direct access by ID --------------------------------------------------------------
    def model(self, model_id: str | uuid.UUID) -> Model:
        """A model by its UUID, whatever its context."""
        return Model(self, self._transport.get(f"models/{segment(model_id)}/"))

    def record(self, record_id: str | uuid.UUID) -> Record:
        """A training record by its UUID (with `versions`: every version trained on it)."""
        return Record(self, self._transport.get(f"records/{segment(record_id)}/"))

    # manifests ------------------------------------------------------------------------
    def load_manifest(self, source: str | os.PathLike | Mapping, *, eager: bool = True,
                      cache_dir: str | os.PathLike | None = None) -> Manifest:
        """`Manifest.load(source, self)`: verify a (frozen) manifest and fetch its required files."""
        from registry_client.manifest import Manifest

        return Manifest.load(source, self, eager=eager, cache_dir=cache_dir)

    def report_tamper(self, model_id: str, version: int, *, file: str, reason: str, expected: str = "",
                      actual: str = "", detail: str = "", fail_on_tamper: bool = True) -> dict | None:
        """Tell the registry a consumer found a mismatch. Best effort: a failure is logged and
        warned about, and None returned, so it never hides the TamperError being raised."""
        body = {"file": file, "reason": reason, "expected": expected, "actual": actual, "detail": detail[:500],
                "fail_on_tamper": fail_on_tamper}
        try:
            return self._transport.post(f"models/{segment(model_id)}/versions/{int(version)}/tamper-reports/", body)
        except (RegistryError, ValueError, TypeError) as exc:
            logger.warning("could not report the tamper event to the registry: %s", exc)
            warnings.warn(f"Could not report the tamper event to the registry: {exc}", RuntimeWarning, stacklevel=3)
            return None


# --- contexts ---------------------------------------------------------------------------

class Context(_Resource):
    """A team workspace: `slug`, `name`, `description`, `role` (yours)."""

    def __init__(self, registry: Registry, data: dict):
        self._registry = registry
        self.data = data

    def __repr__(self) -> str:
        return f"<Context {self.slug}>"

    def _key(self) -> Any:
        return self.data.get("slug")

    @property
    def _t(self) -> Transport:
        return self._registry._transport

    def refresh(self) -> Context:
        self.data = self._t.get(f"contexts/{segment(self.slug)}/")
        return self

    # models ---------------------------------------------------------------------------
    def model(self, name_or_id: str | uuid.UUID, *, create: bool = False, **fields) -> Model:
        """A model of this context by name (case-insensitive) or UUID.

        With `create=True`, a model that does not exist is created with `fields` (description,
        tags, task, owner, metadata); an existing one is returned unchanged (use
        `model.update()` to change it). NotFound otherwise.
        """
        if _is_uuid(name_or_id):
            try:
                data = self._t.get(f"models/{segment(name_or_id)}/")
            except NotFound:
                data = None
            if data is not None and data.get("context") == self.slug:
                return Model(self._registry, data)
            if not create:
                raise NotFound(f"No model {name_or_id} in context '{self.slug}'.", status=404)
        found = self._find(str(name_or_id))
        if found is not None:
            return found
        if not create:
            raise NotFound(f"No model named '{name_or_id}' in context '{self.slug}'.", status=404)
        try:
            return self.create_model(str(name_or_id), **fields)
        except Conflict as exc:
            if exc.code != "name_taken":
                raise
            found = self._find(str(name_or_id))  # created meanwhile by someone else
            if found is None:
                raise
            return found

    def _find(self, name: str) -> Model | None:
        page = self._t.get(f"contexts/{segment(self.slug)}/models/", name=name.strip())
        results = page.get("results", [])
        return Model(self._registry, results[0]) if results else None

    def create_model(self, name: str, *, description: str = "", tags: Iterable[str] | None = None,
                     task: str = "", owner: str | None = None, metadata: dict | None = None) -> Model:
        """Create a model (Conflict `name_taken` if the name exists)."""
        body: dict[str, Any] = {"name": name, "description": description, "task": task}
        if tags is not None:
            body["tags"] = list(tags)
        if owner is not None:
            body["owner"] = owner
        if metadata is not None:
            body["metadata"] = metadata
        return Model(self._registry, self._t.post(f"contexts/{segment(self.slug)}/models/", body))

    def models(self, search: str = "", *, tag: str | Iterable[str] | None = None, name: str = "",
               ordering: str = "") -> Iterator[Model]:
        """Every matching model, all pages: `search` words in name/description/tags, `tag`
        (one or several, all required), `ordering` name|created|updated|versions ('-' reverses)."""
        tags = [tag] if isinstance(tag, str) else list(tag or [])
        for item in self._t.paginate(f"contexts/{segment(self.slug)}/models/", search=search, tag=tags,
                                     name=name, ordering=ordering):
            yield Model(self._registry, item)

    # training records -----------------------------------------------------------------
    def records(self, search: str = "") -> Iterator[Record]:
        for item in self._t.paginate(f"contexts/{segment(self.slug)}/records/", search=search):
            yield Record(self._registry, item)

    def record(self, name_or_id: str, *, uri: str | None = None, checksum: str | None = None,
               description: str = "", create: bool = False) -> Record:
        """A training record by UUID or exact name; with `create=True` (and `uri`) it is created
        when missing. An existing record whose uri/checksum differ from the ones given is a
        Conflict: a name stands for one dataset."""
        if _is_uuid(name_or_id):
            return self._registry.record(name_or_id)
        existing = next((r for r in self.records(search=name_or_id) if r.name == name_or_id), None)
        if existing is not None:
            if (uri is not None and existing.uri != uri) or (checksum and existing.data.get("checksum") != checksum):
                raise Conflict(f"Training record '{name_or_id}' exists with uri {existing.uri!r} and checksum "
                               f"{existing.data.get('checksum')!r}; use another name for a different dataset.",
                               status=409, code="name_taken", field="name")
            return existing
        if not create:
            raise NotFound(f"No training record named '{name_or_id}' in context '{self.slug}'.", status=404)
        if not uri:
            raise ValueError("A new training record needs a uri.")
        try:
            return self.create_record(name_or_id, uri=uri, checksum=checksum or "", description=description)
        except Conflict as exc:
            if exc.code != "name_taken":
                raise
            return self.record(name_or_id, uri=uri, checksum=checksum)

    def create_record(self, name: str, uri: str, *, checksum: str = "", description: str = "") -> Record:
        """Register a dataset (or any external artifact) by URI and optional checksum."""
        body = {"name": name, "uri": uri, "checksum": checksum, "description": description}
        return Record(self._registry, self._t.post(f"contexts/{segment(self.slug)}/records/", body))

    # audit log ------------------------------------------------------------------------
    def audit(self, *, action: str = "", actor: str = "", object_type: str = "", object_id: str = "") -> Iterator[dict]:
        """Audit events, newest first, as dicts (id, at, actor, action, object, summary, changes)."""
        yield from self._t.paginate(f"contexts/{segment(self.slug)}/audit/", action=action, actor=actor,
                                    object_type=object_type, object_id=object_id)


# --- training records -------------------------------------------------------------------

class Record(_Resource):
    """A training dataset or external artifact: `id`, `name`, `uri`, `checksum`, `description`."""

    def __init__(self, registry: Registry, data: dict):
        self._registry = registry
        self.data = data

    def __repr__(self) -> str:
        return f"<Record {self.data.get('name')} {self.data.get('uri')}>"

    def refresh(self) -> Record:
        self.data = self._registry._transport.get(f"records/{segment(self.id)}/")
        return self

    def update(self, **fields) -> Record:
        """Change name, uri, checksum or description."""
        self.data = self._registry._transport.patch(f"records/{segment(self.id)}/", fields)
        return self


# --- models -----------------------------------------------------------------------------

class Model(_Resource):
    """A model: `id`, `name`, `context` (slug), `description`, `tags`, `task`, `owner`,
    `metadata`, `version_numbers`, `latest_version`, `aliases` ({name: number})..."""

    def __init__(self, registry: Registry, data: dict):
        self._registry = registry
        self.data = data

    def __repr__(self) -> str:
        return f"<Model {self.data.get('context')}/{self.data.get('name')} {self.data.get('id')}>"

    @property
    def _t(self) -> Transport:
        return self._registry._transport

    @property
    def _path(self) -> str:
        return f"models/{segment(self.id)}/"

    def refresh(self) -> Model:
        self.data = self._t.get(self._path)
        return self

    def update(self, **fields) -> Model:
        """Change name, description, tags, task, owner or metadata (metadata is replaced whole)."""
        if "tags" in fields and fields["tags"] is not None and not isinstance(fields["tags"], str):
            fields["tags"] = list(fields["tags"])
        self.data = self._t.patch(self._path, fields)
        return self

    def delete(self) -> None:
        """Delete the model, its versions and files (admins; irreversible)."""
        self._t.delete(self._path)

    # versions -------------------------------------------------------------------------
    def create_version(self, *, hyperparameters: dict | None = None, config: dict | None = None,
                       records: Iterable[Any] | None = None, framework: str | None = None,
                       framework_version: str | None = None, metadata: dict | None = None,
                       tags: Iterable[str] | None = None, signature: dict | None = None,
                       description: str | None = None, name: str | None = None) -> Version:
        """Create the next version (a draft). `records` are Record objects, IDs, or dicts
        {name, uri, checksum} (created in the context when missing, reused by name)."""
        body = _version_body(self, hyperparameters=hyperparameters, config=config, records=records,
                             framework=framework, framework_version=framework_version, metadata=metadata,
                             tags=tags, signature=signature, description=description, name=name)
        return Version(self, self._t.post(f"{self._path}versions/", body))

    def version(self, number: int | str) -> Version:
        """A version by number, or by alias name when given a non-numeric string."""
        if isinstance(number, str) and not number.isdigit():
            return self.alias(number)
        return Version(self, self._t.get(f"{self._path}versions/{int(number)}/"))

    def versions(self) -> Iterator[Version]:
        """Every version, oldest first."""
        for item in self._t.paginate(f"{self._path}versions/"):
            yield Version(self, item)

    def latest(self) -> Version:
        """The newest version (NotFound if the model has none)."""
        numbers = self.refresh().version_numbers
        if not numbers:
            raise NotFound(f"Model '{self.name}' has no version yet.", status=404)
        return self.version(max(numbers))

    # aliases --------------------------------------------------------------------------
    def aliases(self) -> dict[str, int]:
        """{alias: version number}."""
        return {item["name"]: item["version"] for item in self._t.paginate(f"{self._path}aliases/")}

    def alias(self, name: str) -> Version:
        """The version an alias points to."""
        data = self._t.get(f"{self._path}aliases/{segment(name)}/")
        return self.version(int(data["version"]))

    def alias_history(self, name: str) -> list[dict]:
        """Moves of an alias, newest first: {from_version, to_version, actor, at}."""
        return self._t.get(f"{self._path}aliases/{segment(name)}/")["history"]

    def set_alias(self, name: str, version: Version | int) -> Version:
        """Point (or move) an alias to a published version, atomically."""
        number = version.number if isinstance(version, Version) else int(version)
        self._t.put(f"{self._path}aliases/{segment(name)}/", {"version": number})
        return self.version(number)

    def rollback_alias(self, name: str) -> Version:
        """Move an alias back to the version it pointed to before."""
        data = self._t.post(f"{self._path}aliases/{segment(name)}/rollback/")
        return self.version(int(data["version"]))

    def delete_alias(self, name: str) -> None:
        self._t.delete(f"{self._path}aliases/{segment(name)}/")


def _record_ids(model: Model, records: Iterable[Any]) -> list[str]:
    context: Context | None = None
    ids = []
    for item in records:
        if isinstance(item, Record):
            ids.append(str(item.id))
        elif isinstance(item, Mapping):
            if item.get("id"):
                ids.append(str(item["id"]))
                continue
            if context is None:
                context = Context(model._registry, {"slug": model.context})
            record = context.record(item["name"], uri=item.get("uri"), checksum=item.get("checksum") or None,
                                    description=item.get("description", ""), create=True)
            ids.append(str(record.id))
        else:
            ids.append(str(item))
    return ids


def _version_body(model: Model, **fields) -> dict:
    body: dict[str, Any] = {}
    for key, value in fields.items():
        if value is None:
            continue
        if key == "records":
            value = _record_ids(model, value)
        elif key == "tags":
            value = [value] if isinstance(value, str) else list(value)
        body[key] = value
    return body


# --- versions ---------------------------------------------------------------------------

class Version(_Resource):
    """A version: `number`, `status` (draft|published), `name`, `description`, `tags`,
    `hyperparameters`, `config`, `framework`, `framework_version`, `records`, `metadata`,
    `signature`, `formats` (summaries), `aliases`, `published_at`... `.model` is its Model."""

    def __init__(self, model: Model, data: dict):
        self.model = model
        self._registry = model._registry
        self.data = data

    def __repr__(self) -> str:
        return (f"<Version {self.model.data.get('context')}/{self.model.data.get('name')} "
                f"v{self.data.get('number')} {self.data.get('status')}>")

    @property
    def _t(self) -> Transport:
        return self._registry._transport

    @property
    def model_id(self) -> str:
        return str(self.data.get("model") or self.model.id)

    @property
    def _path(self) -> str:
        return f"models/{segment(self.model_id)}/versions/{int(self.number)}/"

    def refresh(self) -> Version:
        self.data = self._t.get(self._path)
        return self

    def update(self, **fields) -> Version:
        """Change fields of a draft (409 once published): name, description, tags,
        hyperparameters, config, framework, framework_version, records, metadata, signature.
        JSON fields are replaced whole; see `update_metadata` to merge keys."""
        body = _version_body(self.model, **fields)
        self.data = self._t.patch(self._path, body)
        return self

    def update_metadata(self, values: Mapping[str, Any] | None = None, /, **keys: Any) -> Version:
        """Merge keys into `metadata` (top level; other keys are kept).

        `v.update_metadata(provenance={"commit": "abc"}, taxonomy={...})`. The read-merge-write
        is not atomic: two clients merging at once can lose one of the writes."""
        merged = {**(self.refresh().data.get("metadata") or {}), **dict(values or {}), **keys}
        self.data = self._t.patch(self._path, {"metadata": merged})
        return self

    def delete(self) -> None:
        """Delete this version and its files (admins; irreversible; its number is not reused)."""
        self._t.delete(self._path)

    # publish --------------------------------------------------------------------------
    def wait_ready(self, *, timeout: float = 600.0, interval: float = 0.5) -> list[Artifact]:
        """Wait until the workers have hashed and inspected every file.

        Returns the artifacts when all are `ready`; raises Conflict (code `not_ready`) naming the
        file when one ends `review` (naming the imports a publisher must approve), `corrupt`,
        `quarantined` or `failed`, or when `timeout` passes."""
        deadline = time.monotonic() + timeout
        while True:
            artifacts = self.artifacts()
            bad = [a for a in artifacts if a.status in FINAL_BAD]
            if bad:
                a = bad[0]
                if a.status == "review":
                    raise Conflict(_review_message(a), status=409, code="not_ready", field=a.kind)
                raise Conflict(f"The {a.kind} file is {a.status}: {a.data.get('status_message') or 'see its report'}.",
                               status=409, code="not_ready", field=a.kind)
            if all(a.status in FINAL_OK for a in artifacts):
                return artifacts
            if time.monotonic() >= deadline:
                pending = ", ".join(f"{a.kind} ({a.status})" for a in artifacts if a.status not in FINAL_OK)
                raise Conflict(f"Files still not ready after {timeout:g} s: {pending}.", status=409, code="not_ready")
            time.sleep(interval)
            interval = min(interval * 1.5, 5.0)

    def publish(self, *, wait: bool = True, timeout: float = 600.0) -> Version:
        """Publish (freeze) the version. With `wait` (default), first wait for the workers to
        finish with every file, since the registry refuses to publish before."""
        if wait:
            self.wait_ready(timeout=timeout)
        self.data = self._t.post(f"{self._path}publish/")
        return self

    # files ----------------------------------------------------------------------------
    def artifacts(self) -> list[Artifact]:
        """The version's files (formats): kind, filename, size, status, md5, sha256, required,
        fail_on_tamper, report..."""
        return [Artifact(self, item) for item in self._t.paginate(f"{self._path}formats/")]

    def artifact(self, kind: str) -> Artifact:
        return Artifact(self, self._t.get(f"{self._path}formats/{segment(kind)}/"))

    def set_file_options(self, kind: str, *, required: bool | None = None,
                         fail_on_tamper: bool | None = None) -> Artifact:
        """Change a format's manifest flags (until publish)."""
        body = {k: v for k, v in (("required", required), ("fail_on_tamper", fail_on_tamper)) if v is not None}
        return Artifact(self, self._t.patch(f"{self._path}formats/{segment(kind)}/", body))

    def _ensure_format(self, kind: str, *, required: bool, fail_on_tamper: bool) -> None:
        try:
            self._t.post(f"{self._path}formats/", {"kind": kind, "required": required, "fail_on_tamper": fail_on_tamper})
        except Conflict as exc:
            if exc.code != "kind_exists":
                raise
            current = self.artifact(kind)
            if (current.data.get("required", True), current.data.get("fail_on_tamper", True)) != (required, fail_on_tamper):
                self.set_file_options(kind, required=required, fail_on_tamper=fail_on_tamper)

    def upload(self, kind: str, path: str | os.PathLike, *, required: bool = True, fail_on_tamper: bool = True,
               progress: bool | None = None, filename: str | None = None, wait: bool = False,
               timeout: float = 600.0, parallel: int = 4) -> Artifact:
        """Upload a file as the format `kind` (pkl, joblib, pt, onnx, ...), replacing any earlier one.

        The file is streamed twice, never loaded whole: once to compute its SHA-256, sent as
        X-Checksum-Sha256 so the registry verifies the stored bytes, then as the PUT body. A
        transient failure restarts the PUT (up to the registry's `retries`). On a registry that
        stores files on S3, the file goes straight to the bucket instead, in parts sent
        `parallel` at a time, and an interrupted upload resumes from the parts already stored. `required` and
        `fail_on_tamper` go into the model manifest. With `wait`, returns once the workers
        have hashed and inspected the file (Conflict if it ends corrupt/quarantined/failed).
        """
        source = Path(path)
        if not source.is_file():
            raise FileNotFoundError(f"No such file: {source}")
        show = transfer.want_progress(self._registry.progress if progress is None else progress)
        digests = transfer.hash_file(source, md5=False, progress=show)
        self._ensure_format(kind, required=required, fail_on_tamper=fail_on_tamper)
        data = transfer.upload_file(self._t, f"{self._path}formats/{segment(kind)}/", source,
                                    sha256=digests.sha256, size=digests.size, filename=filename or source.name,
                                    progress=show, timeout=timeout, parallel=parallel)
        artifact = Artifact(self, data)
        if wait:
            self.wait_ready(timeout=timeout)
            artifact = self.artifact(kind)
        return artifact

    def download(self, kind: str, dest: str | os.PathLike = ".", *, progress: bool | None = None,
                 fail_on_tamper: bool | None = None, acknowledge_not_ready: bool = False) -> Path:
        """Download a format's file to `dest` (a folder, or a file path), verified.

        The bytes go to a temporary file beside the destination, are checked against the
        SHA-256 and MD5 the registry computed (the uploader's declared SHA-256 while it has
        not hashed the file yet), and only then renamed into place. A mismatch is reported to
        the registry and raises TamperError when the format's fail_on_tamper is set (or the
        argument says so); otherwise it warns and keeps the file.

        A file that is not `ready` (still being checked, in review, quarantined, corrupt, failed)
        is refused with Conflict `not_ready` unless `acknowledge_not_ready` says you mean it: the
        registry then wants the file's status named, and records that download in its audit log.
        """
        artifact = self.artifact(kind)
        status = artifact.data.get("status", "")
        if status != "ready" and not acknowledge_not_ready:
            message = (_review_message(artifact) if status == "review" else
                       f"The {kind} file is {status}: {artifact.data.get('status_message') or 'not ready'}.")
            raise Conflict(f"{message} Pass acknowledge_not_ready=True to download it anyway (audited).",
                           status=409, code="not_ready", field=kind)
        dest = Path(dest)
        target = dest / artifact.filename if dest.is_dir() or str(dest).endswith(os.sep) else dest
        expected_sha = artifact.data.get("sha256") or artifact.data.get("declared_sha256") or ""
        expected_md5 = artifact.data.get("md5") or ""
        if not expected_sha:
            warnings.warn(f"The registry has no checksum for the {kind} file yet: it is downloaded unverified.",
                          RuntimeWarning, stacklevel=2)
        show = transfer.want_progress(self._registry.progress if progress is None else progress)
        url = f"{self._path}formats/{segment(kind)}/file"
        if status != "ready":
            url += f"?acknowledge={segment(status)}"
        got = transfer.download_to(self._t, url, target, progress=show, expected_size=artifact.data.get("size"))
        problem = None
        if expected_sha and got.sha256 != expected_sha:
            problem = ("sha256", expected_sha, got.sha256)
        elif expected_md5 and got.md5 != expected_md5:
            problem = ("md5", expected_md5, got.md5)
        if problem is None:
            return transfer.place(got.path, target)
        algorithm, expected, actual = problem
        strict = artifact.data.get("fail_on_tamper", True) if fail_on_tamper is None else fail_on_tamper
        message = (f"The {kind} file of {self.model.data.get('name')} v{self.number} does not match its "
                   f"{algorithm}: expected {expected}, got {actual}.")
        self._registry.report_tamper(self.model_id, self.number, file=kind, reason="checksum_mismatch",
                                     expected=expected, actual=actual, detail=message, fail_on_tamper=strict)
        if strict:
            transfer.discard(got.path)
            raise TamperError(message, file=kind, reason="checksum_mismatch", expected=expected, actual=actual)
        warnings.warn(message, TamperWarning, stacklevel=2)
        return transfer.place(got.path, target)

    def approve_imports(self, kind: str, reason: str) -> Artifact:
        """Approve the third-party imports of a file in review (publishers): they become trusted
        in the context, with `reason` kept beside them, and the file becomes ready."""
        return Artifact(self, self._t.post(f"{self._path}formats/{segment(kind)}/approve-imports/",
                                           {"reason": reason}))

    def delete_artifact(self, kind: str) -> None:
        """Delete a format (and its file) of a draft."""
        self._t.delete(f"{self._path}formats/{segment(kind)}/")

    def track_artifact(self, uri: str, checksum: str = "", *, name: str | None = None,
                       description: str = "") -> Record:
        """Link an artifact stored elsewhere (by URI and checksum) to this draft version.

        It is kept as a training record of the context (name, uri, checksum), created or
        reused by name (default: the last part of the URI), and added to the version's records.
        """
        name = name or _name_from_uri(uri)
        context = Context(self._registry, {"slug": self.model.data.get("context") or self.model.refresh().context})
        record = context.record(name, uri=uri, checksum=checksum or None, description=description, create=True)
        current = [str(item["id"]) for item in self.refresh().data.get("records", [])]
        if str(record.id) not in current:
            self.data = self._t.patch(self._path, {"records": [*current, str(record.id)]})
        return record

    # metrics --------------------------------------------------------------------------
    def log_metrics(self, metrics: Mapping[str, Any] | Iterable[Mapping[str, Any]], *, step: int | None = None,
                    wallclock: datetime | float | str | None = None) -> list[dict]:
        """Log metrics: a dict {key: value} sharing `step`/`wallclock`, or a list of dicts
        {key, value, step?, wallclock?} (a batch; `step`/`wallclock` fill what an item lacks).
        Values are numbers or strings; wallclock a datetime (naive = local time), a Unix time
        or ISO 8601. Published versions accept metrics too."""
        if isinstance(metrics, Mapping):
            items = [{"key": key, "value": value} for key, value in metrics.items()]
        else:
            items = [dict(item) for item in metrics]
        for item in items:
            if step is not None:
                item.setdefault("step", step)
            if wallclock is not None:
                item.setdefault("wallclock", wallclock)
            if item.get("step") is not None and not isinstance(item["step"], bool):
                item["step"] = int(item["step"])  # numpy integers too
            if "wallclock" in item:
                item["wallclock"] = _wallclock(item["wallclock"])
            item["value"] = _metric_value(item.get("value"))
        logged: list[dict] = []
        for start in range(0, len(items), MAX_METRICS_PER_CALL):
            logged.extend(self._t.post(f"{self._path}metrics/", items[start:start + MAX_METRICS_PER_CALL]))
        return logged

    def log_metric(self, key: str, value: float | str, *, step: int | None = None,
                   wallclock: datetime | float | str | None = None) -> dict:
        """Log one metric value."""
        return self.log_metrics([{"key": key, "value": value}], step=step, wallclock=wallclock)[0]

    def metrics(self, key: str = "") -> list[dict]:
        """Logged metrics {key, value, step, wallclock}, optionally of one key."""
        return list(self._t.paginate(f"{self._path}metrics/", key=key))

    # manifests ------------------------------------------------------------------------
    def manifest(self, *, frozen: bool = False) -> dict:
        """The model manifest as JSON; frozen adds checksums, timestamp and lock_checksum
        (Conflict until every file is ready)."""
        return self._t.get(f"{self._path}manifest/", frozen="true" if frozen else None)

    def freeze(self, path: str | os.PathLike | None = None) -> Manifest:
        """Fetch the frozen manifest, write it to `path` (JSON) when given, and return it
        (nothing is downloaded yet: `.get_model(name)` fetches and verifies a file)."""
        from registry_client.manifest import Manifest

        manifest = Manifest(self.manifest(frozen=True), self._registry)
        manifest.verify_lock()
        if path is not None:
            manifest.save(path)
        return manifest

    def get_model(self, kind: str, *, cache_dir: str | os.PathLike | None = None) -> Path:
        """The local path of a format's file, fetched through the frozen manifest: verified
        against its frozen checksums and kept in the cache (a second call does not download)."""
        from registry_client.manifest import Manifest

        manifest = Manifest.load(self.manifest(frozen=True), self._registry, eager=False, cache_dir=cache_dir)
        return manifest.get_model(kind)


class Artifact(_Resource):
    """A format of a version: `kind`, `filename`, `size`, `status`, `md5`, `sha256`,
    `required`, `fail_on_tamper`, `status_message`, `report`..."""

    def __init__(self, version: Version, data: dict):
        self.version = version
        self._registry = version._registry
        self.data = data

    def __repr__(self) -> str:
        return f"<Artifact {self.data.get('kind')} {self.filename!r} {self.data.get('status')}>"

    def _key(self) -> Any:
        return (self.data.get("id"), self.data.get("kind"))

    @property
    def filename(self) -> str:
        """The uploaded file's name, or `<model>-v<n>.<kind>` when none was given."""
        return (self.data.get("original_filename")
                or f"{self.version.model.data.get('name', 'model')}-v{self.version.number}.{self.data.get('kind')}")


def _wallclock(value: Any) -> Any:
    if isinstance(value, datetime):
        if value.tzinfo is None:
            value = value.astimezone()  # naive: the machine's local time
        return value.isoformat()
    if isinstance(value, date):
        return datetime(value.year, value.month, value.day).astimezone().isoformat()
    return value


def _metric_value(value: Any) -> Any:
    """numpy scalars and other numbers → float; strings stay strings."""
    if isinstance(value, (bool, int, float, str)) or value is None:
        return value
    if hasattr(value, "item"):  # numpy scalar / 0-d array / torch scalar
        return value.item()
    try:
        return float(value)
    except (TypeError, ValueError):
        return str(value)


def _name_from_uri(uri: str) -> str:
    tail = re.split(r"[/:]", uri.rstrip("/"))[-1]
    return tail or uri

