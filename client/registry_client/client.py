"""The object API: Registry → Context → Model → Version → Format, Model → Attachment, and Record.

The words are the registry's: a **format** is one file of a version in one serialization (kind
`pkl`, `onnx`, ...; the kind `artifact` is a zip model artifact), an **attachment** is a file of
the model itself (a model card, a report, a plot), a **training record** is a
dataset (any file a version was trained on) known by URI and checksum.

Each resource is a dataclass whose fields are the JSON the registry returned for it, typed
(`model.tags: list[str]`, `version.status: str`, `fmt.size: int | None`, timestamps as aware
datetimes); `.data` keeps that JSON as it came (so a field a newer registry adds is there
before this client knows it), and `.refresh()` reads it again. Methods call the REST API
(SPEC §5) and raise the typed errors of `registry_client.errors`.

`Registry.load(uri, kind=...)` (and `registry_client.load`) is the one-call shortcut: a
verified local path from a URI such as "ctx/model@production" (see `registry_client.uris`).
"""

from __future__ import annotations

import os
import re
import tempfile
import time
import uuid
import warnings
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import MISSING, dataclass, field, fields
from datetime import date, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from registry_client import transfer
from registry_client._http import OfflineTransport, Transport, logger, segment
from registry_client.config import load_settings, offline_mode
from registry_client.errors import Conflict, MoveRequested, NotFound, RegistryError, TamperError, TamperWarning
from registry_client.provenance import capture as capture_provenance
from registry_client.provenance import enabled as provenance_enabled
from registry_client.uris import parse_version_uri

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


def _review_message(fmt: Format) -> str:
    names = [item.get("import", "?") for item in fmt.unvetted_imports]
    shown = ", ".join(names) if names else fmt.status_message or "see its report"
    return (f"The {fmt.kind} file needs review: it imports third-party code that is not on the registry's "
            f"allow-list nor trusted in this context ({shown}). A publisher must approve these imports "
            f"(the dashboard's Formats tab, or Version.approve_imports) before the version can be published.")


# --- typed JSON -------------------------------------------------------------------------

def _json(default: Any = None, *, key: str | None = None, factory: Callable[[], Any] | None = None,
          convert: Callable[[Any], Any] | None = None) -> Any:
    """A dataclass field read from the resource's JSON (`key`, default the field's name). A key
    the JSON lacks gives the default; `convert` turns a present, non-null value into its type."""
    metadata = {"json_key": key, "convert": convert}
    if factory is not None:
        return field(default_factory=factory, metadata=metadata)
    return field(default=default, metadata=metadata)


def _timestamp(value: Any) -> datetime | None:
    """ISO 8601 as the registry writes it ('Z' for UTC) → an aware datetime."""
    try:
        return datetime.fromisoformat(str(value))
    except ValueError:
        return None


def _rows(cls: type) -> Callable[[Any], list]:
    """A list of JSON objects → a list of the small frozen dataclass `cls` (unknown keys ignored)."""
    names = {f.name for f in fields(cls)}

    def convert(items: Any) -> list:
        return [cls(**{k: v for k, v in item.items() if k in names}) for item in items or []
                if isinstance(item, Mapping)]

    return convert


@dataclass(frozen=True)
class RecordRef:
    """A training record as a version lists it."""

    id: str = ""
    name: str = ""
    uri: str = ""


@dataclass(frozen=True)
class FormatSummary:
    """A format as a version lists it; `Version.format(kind)` reads all of it."""

    kind: str = ""
    status: str = ""
    size: int | None = None
    sha256: str = ""


@dataclass(frozen=True)
class RecordVersion:
    """A version trained on a record, as the record lists it."""

    model_id: str = ""
    model_name: str = ""
    number: int = 0
    status: str = ""


@dataclass(eq=False, repr=False, kw_only=True)
class _Resource:
    """A JSON object from the API as typed fields; `.data` is the JSON itself."""

    data: dict = field(default_factory=dict)

    @classmethod
    def _from_json(cls, data: Mapping, **links: Any):
        resource = cls(**links)
        resource._apply(data)
        return resource

    def _apply(self, data: Mapping) -> None:
        """Set every JSON field from `data` (what the registry answered)."""
        self.data = dict(data)
        for item in fields(self):
            if "json_key" not in item.metadata:
                continue
            key = item.metadata["json_key"] or item.name
            if key in data:
                value = data[key]
                convert = item.metadata["convert"]
                if convert is not None and value is not None:
                    value = convert(value)
            elif item.default_factory is not MISSING:
                value = item.default_factory()
            else:
                value = item.default
            setattr(self, item.name, value)

    def __eq__(self, other: object) -> bool:
        return type(other) is type(self) and self._key() == other._key()  # type: ignore[attr-defined]

    def __hash__(self) -> int:
        return hash((type(self).__name__, self._key()))

    def _key(self) -> Any:
        return getattr(self, "id", None)


# --- registry ---------------------------------------------------------------------------

class Registry:
    """A connection to one registry.

    `url` and `token` default to REGISTRY_URL / REGISTRY_TOKEN, then to the config file
    (see `registry_client.config`); `default_context` (REGISTRY_CONTEXT, or `context` in the
    file) is the context of `models:/name@alias` URIs. `retries` and `retry_backoff` (seconds,
    doubled each time) govern retries of transient failures; `progress` forces progress bars
    on or off (default: $REGISTRY_PROGRESS, else on in a Jupyter notebook or a terminal, off in
    a CI log); `cache_dir` is where verified downloads
    are kept (default $REGISTRY_CACHE_DIR or ~/.cache/registry-client).

    `offline` (default $REGISTRY_OFFLINE): never contact the registry. Neither a URL nor a token
    is needed; `Manifest.load` of a frozen manifest serves the files already verified in the
    cache (hashed again first) and raises NotCached for any other; everything else raises
    OfflineError before a connection is even tried.
    """

    def __init__(self, url: str | None = None, token: str | None = None, *, default_context: str | None = None,
                 timeout: float = 60.0, retries: int = 5, retry_backoff: float = 0.5, progress: bool | None = None,
                 cache_dir: str | os.PathLike | None = None, verify: bool | str = True, offline: bool | None = None):
        self.offline = offline_mode(offline)
        settings = load_settings(url, token, context=default_context, require_token=not self.offline,
                                 require_url=not self.offline)
        self.url = settings.url
        self.default_context = settings.context or None
        self.progress = progress
        self.cache_dir = Path(cache_dir) if cache_dir is not None else None
        if self.offline:
            self._transport = OfflineTransport(settings.url)
        else:
            self._transport = Transport(settings.url, settings.token, timeout=timeout, retries=retries,
                                        retry_backoff=retry_backoff, verify=verify)

    def __repr__(self) -> str:
        return f"Registry({self.url!r}{', offline' if self.offline else ''})"

    def __enter__(self) -> Registry:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        self._transport.close()

    # contexts -------------------------------------------------------------------------
    def contexts(self) -> list[Context]:
        """The contexts (team workspaces) you have a role in."""
        return [Context._from_json(item, registry=self) for item in self._transport.paginate("contexts/")]

    def context(self, slug: str) -> Context:
        """One context by its slug (NotFound if it does not exist or you have no role in it)."""
        return Context._from_json(self._transport.get(f"contexts/{segment(slug)}/"), registry=self)

    # direct access by ID --------------------------------------------------------------
    def model(self, model_id: str | uuid.UUID) -> Model:
        """A model by its UUID, whatever its context."""
        return Model._from_json(self._transport.get(f"models/{segment(model_id)}/"), registry=self)

    def record(self, record_id: str | uuid.UUID) -> Record:
        """A training record by its UUID (with `versions`: every version trained on it)."""
        return Record._from_json(self._transport.get(f"records/{segment(record_id)}/"), registry=self)

    # the shortcut -----------------------------------------------------------------------
    def load(self, uri: str, kind: str | None = None, *, cache_dir: str | os.PathLike | None = None) -> Path:
        """The verified local path of one format of the version `uri` names.

        `uri`: "ctx/model@alias", "ctx/model/3", "registry://ctx/model@alias" (or /3),
        "models:/model@alias" or "models:/model/3" (the default context); see
        `registry_client.uris`. `kind` (pkl, onnx, ...) defaults to the version's only required
        format. The file is fetched through the version's frozen manifest like
        `Version.get_model`: its size, SHA-256 and MD5 checked, kept in the cache (a second call
        downloads nothing), a mismatch reported and raised as TamperError.
        """
        target = parse_version_uri(uri, default_context=self.default_context)
        if target.kind is not None and kind is not None and kind != target.kind:
            raise ValueError(f"{uri!r} names the {target.kind} file, not {kind}.")
        # The unbound context: its models' list answers 404 if it is not visible, so it needs no read.
        model = Context._from_json({"slug": target.context}, registry=self).model(target.model)
        number = target.number
        if number is None:
            number = model.aliases.get(str(target.alias))
            if number is None:
                known = ", ".join(sorted(model.aliases)) or "none"
                raise NotFound(f"Model '{model.name}' has no alias '{target.alias}' (its aliases: {known}).",
                               status=404)
        return _fetch_verified(self, model.id, number, kind or target.kind, cache_dir=cache_dir)

    # MLflow -----------------------------------------------------------------------------
    def import_mlflow(self, tracking_uri: str, context: str, *, models: Iterable[str] | None = None,
                      dry_run: bool = False, timeout: float = 600.0, progress: bool | None = None,
                      on_version: Callable | None = None):
        """Copy registered models (all, or those named in `models`) from the MLflow tracking
        server at `tracking_uri` into `context`, over MLflow's REST API; safe to run again (only
        what is new or changed is copied, an interrupted import resumes). With `dry_run`, nothing
        is written. Returns an `ImportSummary`; see `registry_client.mlflow_import` for what maps
        to what. `on_version` is called with each version's outcome as it is done."""
        from registry_client.mlflow_import import import_mlflow

        return import_mlflow(self, tracking_uri, context, models=models, dry_run=dry_run, timeout=timeout,
                             progress=progress, on_version=on_version)

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


def load(uri: str, kind: str | None = None, *, registry: Registry | None = None,
         cache_dir: str | os.PathLike | None = None) -> Path:
    """`Registry.load` with a registry configured from the environment or the config file:

        path = registry_client.load("fraud/churn-classifier@production", kind="pkl")
    """
    if registry is not None:
        return registry.load(uri, kind, cache_dir=cache_dir)
    with Registry() as configured:
        return configured.load(uri, kind, cache_dir=cache_dir)


def _fetch_verified(registry: Registry, model_id: str, number: int, kind: str | None, *,
                    cache_dir: str | os.PathLike | None = None) -> Path:
    """One format of a version, fetched through its frozen manifest and verified (cached)."""
    from registry_client.manifest import Manifest

    frozen = _frozen_manifest(registry, model_id, number)
    manifest = Manifest.load(frozen, registry, eager=False, cache_dir=cache_dir)
    where = f"version {number} of {manifest.data.get('model_name') or model_id}"
    if kind is None:
        formats = [item for item in manifest.files.values() if not item.external]
        candidates = [item for item in formats if item.required] or formats
        if len(candidates) != 1:
            raise ValueError(f"Name the kind to load: {where} has the files "
                             f"{', '.join(manifest.files) or '(none)'}.")
        kind = candidates[0].name
    if kind not in manifest.files:
        raise NotFound(f"No {kind} file in {where}; it has: {', '.join(manifest.files) or 'none'}.", status=404)
    return manifest.get_model(kind)


def _frozen_manifest(registry: Registry, model_id: str, number: int) -> dict:
    """A version's frozen manifest. The registry refuses one (409 `not_freezable`) while a file
    is not ready; a file it found `corrupt` (its stored bytes no longer match their checksum) is
    no wait but tamper, raised as TamperError (reason `corrupt`). Quarantined, failed or review
    files stay the registry's Conflict, whose message says they will not become ready."""
    version_path = f"models/{segment(model_id)}/versions/{int(number)}/"
    try:
        return registry._transport.get(f"{version_path}manifest/", frozen="true")
    except Conflict as exc:
        if exc.code != "not_freezable":
            raise
        corrupt = [item for item in registry._transport.paginate(f"{version_path}formats/")
                   if item.get("status") == "corrupt"]
        if not corrupt:
            raise
        item = corrupt[0]
        kind = str(item.get("kind", ""))
        reason = item.get("status_message") or "its stored bytes do not match their recorded checksum"
        raise TamperError(
            f"Tamper detected by the registry: the {kind} file of version {number} is corrupt ({reason}). "
            "Nothing was downloaded; upload a good copy again (in a new version if this one is published).",
            file=kind, reason="corrupt", expected=str(item.get("sha256") or item.get("declared_sha256") or ""),
        ) from None


# --- contexts ---------------------------------------------------------------------------

@dataclass(eq=False, repr=False, kw_only=True)
class Context(_Resource):
    """A team workspace."""

    registry: Registry
    slug: str = _json("")
    name: str = _json("")
    description: str = _json("")
    created_at: datetime | None = _json(None, convert=_timestamp)
    role: str | None = _json(None)  # yours

    def __repr__(self) -> str:
        return f"<Context {self.slug}>"

    def _key(self) -> Any:
        return self.slug

    @property
    def _t(self) -> Transport:
        return self.registry._transport

    def refresh(self) -> Context:
        self._apply(self._t.get(f"contexts/{segment(self.slug)}/"))
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
                return Model._from_json(data, registry=self.registry)
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
        return Model._from_json(results[0], registry=self.registry) if results else None

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
        return Model._from_json(self._t.post(f"contexts/{segment(self.slug)}/models/", body), registry=self.registry)

    def models(self, search: str = "", *, tag: str | Iterable[str] | None = None, name: str = "",
               ordering: str = "") -> Iterator[Model]:
        """Every matching model, all pages: `search` words in name/description/tags, `tag`
        (one or several, all required), `ordering` name|created|updated|versions ('-' reverses)."""
        tags = [tag] if isinstance(tag, str) else list(tag or [])
        for item in self._t.paginate(f"contexts/{segment(self.slug)}/models/", search=search, tag=tags,
                                     name=name, ordering=ordering):
            yield Model._from_json(item, registry=self.registry)

    # training records -----------------------------------------------------------------
    def records(self, search: str = "") -> Iterator[Record]:
        for item in self._t.paginate(f"contexts/{segment(self.slug)}/records/", search=search):
            yield Record._from_json(item, registry=self.registry)

    def record(self, name_or_id: str, *, uri: str | None = None, checksum: str | None = None,
               description: str = "", create: bool = False) -> Record:
        """A training record by UUID or exact name; with `create=True` (and `uri`) it is created
        when missing. An existing record whose uri/checksum differ from the ones given is a
        Conflict: a name stands for one dataset."""
        if _is_uuid(name_or_id):
            return self.registry.record(name_or_id)
        existing = next((r for r in self.records(search=name_or_id) if r.name == name_or_id), None)
        if existing is not None:
            if (uri is not None and existing.uri != uri) or (checksum and existing.checksum != checksum):
                raise Conflict(f"Training record '{name_or_id}' exists with uri {existing.uri!r} and checksum "
                               f"{existing.checksum!r}; use another name for a different dataset.",
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
        """Register a dataset (or any other file a model is trained on) by URI and optional checksum."""
        body = {"name": name, "uri": uri, "checksum": checksum, "description": description}
        return Record._from_json(self._t.post(f"contexts/{segment(self.slug)}/records/", body),
                                 registry=self.registry)

    # audit log ------------------------------------------------------------------------
    def audit(self, *, action: str = "", actor: str = "", object_type: str = "", object_id: str = "") -> Iterator[dict]:
        """Audit events, newest first, as dicts (id, at, actor, action, object, summary, changes)."""
        yield from self._t.paginate(f"contexts/{segment(self.slug)}/audit/", action=action, actor=actor,
                                    object_type=object_type, object_id=object_id)


# --- training records -------------------------------------------------------------------

@dataclass(eq=False, repr=False, kw_only=True)
class Record(_Resource):
    """A training record: a dataset a version was trained on, by URI and optional checksum."""

    registry: Registry
    id: str = _json("")
    context: str = _json("")
    name: str = _json("")
    uri: str = _json("")
    checksum: str = _json("")
    description: str = _json("")
    created_by: str | None = _json(None)
    created_at: datetime | None = _json(None, convert=_timestamp)
    version_count: int | None = _json(None)  # in a context's list of records
    # Read by ID (Registry.record): every version trained on it.
    versions: list[RecordVersion] | None = _json(None, convert=_rows(RecordVersion))

    def __repr__(self) -> str:
        return f"<Record {self.name} {self.uri}>"

    def refresh(self) -> Record:
        self._apply(self.registry._transport.get(f"records/{segment(self.id)}/"))
        return self

    def update(self, **fields) -> Record:
        """Change name, uri, checksum or description."""
        self._apply(self.registry._transport.patch(f"records/{segment(self.id)}/", fields))
        return self


# --- models -----------------------------------------------------------------------------

class _Metrics:
    """log_metrics / log_metric / metrics, shared by versions and models (`_t` and `_path`
    are the resource's transport and API path)."""

    # metrics --------------------------------------------------------------------------
    def log_metrics(self, metrics: Mapping[str, Any] | Iterable[Mapping[str, Any]], *, step: int | None = None,
                    wallclock: datetime | float | str | None = None) -> list[dict]:
        """Log metrics: a dict {key: value} sharing `step`/`wallclock`, or a list of dicts
        {key, value, step?, wallclock?} (a batch; `step`/`wallclock` fill what an item lacks).
        Values are numbers or strings; wallclock a datetime (naive = local time), a Unix time
        or ISO 8601. Published versions accept metrics too; on a model, they are the model's
        own (a monitoring figure across versions, say), shown on its page."""
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



@dataclass(eq=False, repr=False, kw_only=True)
class Model(_Metrics, _Resource):
    """A model. `aliases` maps each alias to its version number, as last read (`refresh()`)."""

    registry: Registry
    id: str = _json("")
    context: str = _json("")  # its slug
    name: str = _json("")
    description: str = _json("")
    tags: list[str] = _json(factory=list)
    task: str = _json("")
    owner: str | None = _json(None)
    metadata: dict = _json(factory=dict)
    version_numbers: list[int] = _json(factory=list)
    latest_version: int | None = _json(None)
    aliases: dict[str, int] = _json(factory=dict)
    created_by: str | None = _json(None)
    created_at: datetime | None = _json(None, convert=_timestamp)
    updated_by: str | None = _json(None)
    updated_at: datetime | None = _json(None, convert=_timestamp)
    url: str = _json("")

    def __repr__(self) -> str:
        return f"<Model {self.context}/{self.name} {self.id}>"

    @property
    def _t(self) -> Transport:
        return self.registry._transport

    @property
    def _path(self) -> str:
        return f"models/{segment(self.id)}/"

    def refresh(self) -> Model:
        self._apply(self._t.get(self._path))
        return self

    def update(self, **fields) -> Model:
        """Change name, description, tags, task, owner or metadata (metadata is replaced whole)."""
        if "tags" in fields and fields["tags"] is not None and not isinstance(fields["tags"], str):
            fields["tags"] = list(fields["tags"])
        self._apply(self._t.patch(self._path, fields))
        return self

    def delete(self) -> None:
        """Delete the model, its versions and files (admins; irreversible)."""
        self._t.delete(self._path)

    def update_metadata(self, values: Mapping[str, Any] | None = None, /, **keys: Any) -> Model:
        """Merge keys into the model's `metadata` (top level; other keys are kept). Not atomic:
        two clients merging at once can lose one of the writes."""
        merged = {**self.refresh().metadata, **dict(values or {}), **keys}
        self._apply(self._t.patch(self._path, {"metadata": merged}))
        return self

    def metric_across_versions(self, key: str) -> list[dict]:
        """Version metric `key` across this model's versions: [{version, value, step, wallclock}],
        each version's latest value (highest step, then newest), by version number."""
        return self._t.get(f"{self._path}metrics/across-versions/", key=key)["versions"]

    # versions -------------------------------------------------------------------------
    def create_version(self, *, hyperparameters: dict | None = None, config: dict | None = None,
                       records: Iterable[Any] | None = None, framework: str | None = None,
                       framework_version: str | None = None, metadata: dict | None = None,
                       tags: Iterable[str] | None = None, signature: dict | None = None,
                       description: str | None = None, name: str | None = None,
                       external_files: Iterable[Mapping[str, Any]] | None = None,
                       provenance: bool | None = None) -> Version:
        """Create the next version (a draft). `records` are Record objects, IDs, or dicts
        {name, uri, checksum} (created in the context when missing, reused by name).
        `external_files`: files of the manifest stored elsewhere (see `add_external_file`).

        `metadata.provenance` is filled from the git checkout the code runs in (repository
        without credentials, commit, branch, dirty, script; see `registry_client.provenance`)
        unless `provenance=False` or REGISTRY_PROVENANCE=0; keys given in `metadata` win."""
        if provenance_enabled(provenance):
            metadata = _with_provenance(metadata, capture_provenance())
        body = _version_body(self, hyperparameters=hyperparameters, config=config, records=records,
                             framework=framework, framework_version=framework_version, metadata=metadata,
                             tags=tags, signature=signature, description=description, name=name,
                             external_files=None if external_files is None else [dict(f) for f in external_files])
        return Version._from_json(self._t.post(f"{self._path}versions/", body), model=self)

    def version(self, number: int | str) -> Version:
        """A version by number, or by alias name when given a non-numeric string."""
        if isinstance(number, str) and not number.isdigit():
            return self.alias(number)
        return Version._from_json(self._t.get(f"{self._path}versions/{int(number)}/"), model=self)

    def versions(self) -> Iterator[Version]:
        """Every version, oldest first."""
        for item in self._t.paginate(f"{self._path}versions/"):
            yield Version._from_json(item, model=self)

    def latest(self) -> Version:
        """The newest version (NotFound if the model has none)."""
        numbers = self.refresh().version_numbers
        if not numbers:
            raise NotFound(f"Model '{self.name}' has no version yet.", status=404)
        return self.version(max(numbers))

    # attachments: files of the model itself -------------------------------------------
    def attachments(self) -> list[Attachment]:
        """The model's attachments (model cards, reports, plots...), by name."""
        return [Attachment._from_json(item, model=self) for item in self._t.paginate(f"{self._path}attachments/")]

    def attachment(self, name: str) -> Attachment:
        """One attachment by name (case-insensitively); NotFound if there is none."""
        return Attachment._from_json(self._t.get(f"{self._path}attachments/{segment(name)}/"), model=self)

    def upload_attachment(self, path: str | os.PathLike, name: str | None = None, *, overwrite: bool = False,
                          description: str | None = None, progress: bool | None = None) -> Attachment:
        """Attach a file to the model itself, as `name` (default: the file's own name).

        Streamed, never loaded whole: hashed first, its SHA-256 sent so the registry stores
        nothing that differs, then PUT (restarted on a transient failure). An attachment of the
        same name is replaced only with `overwrite` (else Conflict `attachment_exists`);
        `description` None keeps the replaced one's. A serialized model is refused (BadRequest
        `serialized_model`): upload it as a version's format instead."""
        source = Path(path)
        if not source.is_file():
            raise FileNotFoundError(f"No such file: {source}")
        name = name or source.name
        show = transfer.want_progress(self.registry.progress if progress is None else progress)
        digests = transfer.hash_file(source, md5=False, progress=show)
        params = {"overwrite": "1" if overwrite else "0"}
        if description is not None:
            params["description"] = description
        data = transfer.put_file(self._t, f"{self._path}attachments/{segment(name)}/file", source,
                                 sha256=digests.sha256, size=digests.size, filename=name, progress=show,
                                 params=params, ok=(200, 201))
        return Attachment._from_json(data, model=self)

    def download_attachment(self, name: str, dest: str | os.PathLike = ".", *,
                            progress: bool | None = None) -> Path:
        """Download an attachment to `dest` (a folder, or a file path), verified.

        The bytes go to a temporary file beside the destination and are renamed into place only
        when their SHA-256 is the one the registry recorded; otherwise the temporary file is
        removed and TamperError is raised (nothing is left at `dest`)."""
        attachment = self.attachment(name)
        dest = Path(dest)
        target = dest / attachment.name if dest.is_dir() or str(dest).endswith(os.sep) else dest
        show = transfer.want_progress(self.registry.progress if progress is None else progress)
        got = transfer.download_to(self._t, f"{self._path}attachments/{segment(attachment.name)}/file", target,
                                   progress=show, expected_size=attachment.size)
        if got.sha256 != attachment.sha256:
            transfer.discard(got.path)
            raise TamperError(f"The attachment {attachment.name} of {self.name} does not match its sha256: "
                              f"expected {attachment.sha256}, got {got.sha256}.", file=attachment.name,
                              reason="checksum_mismatch", expected=attachment.sha256, actual=got.sha256)
        return transfer.place(got.path, target)

    def delete_attachment(self, name: str) -> None:
        """Delete an attachment and its stored file (editors)."""
        self._t.delete(f"{self._path}attachments/{segment(name)}/")

    # aliases --------------------------------------------------------------------------
    def alias(self, name: str) -> Version:
        """The version an alias points to (read now, not from `aliases`)."""
        data = self._t.get(f"{self._path}aliases/{segment(name)}/")
        return self.version(int(data["version"]))

    def alias_history(self, name: str) -> list[dict]:
        """Moves of an alias, newest first: {from_version, to_version, actor, at}."""
        return self._t.get(f"{self._path}aliases/{segment(name)}/")["history"]

    def set_alias(self, name: str, version: Version | int, *, comment: str = "") -> Version:
        """Point (or move) an alias to a published version, atomically. A protected alias the
        token may not move raises MoveRequested: the move became a request someone approves."""
        number = version.number if isinstance(version, Version) else int(version)
        path = f"{self._path}aliases/{segment(name)}/"
        data = _moved(self._t.request("PUT", path, json={"version": number, "comment": comment},
                                      ok=(200, 202)).json(), "PUT", path)
        self._apply({**self.data, "aliases": {**self.aliases, data["name"]: int(data["version"])}})
        return self.version(number)

    def rollback_alias(self, name: str) -> Version:
        """Move an alias back to the version it pointed to before (MoveRequested: see set_alias)."""
        path = f"{self._path}aliases/{segment(name)}/rollback/"
        data = _moved(self._t.request("POST", path, json={}, ok=(200, 202)).json(), "POST", path)
        self._apply({**self.data, "aliases": {**self.aliases, data["name"]: int(data["version"])}})
        return self.version(int(data["version"]))

    def delete_alias(self, name: str) -> None:
        """Remove an alias (MoveRequested: see set_alias)."""
        path = f"{self._path}aliases/{segment(name)}/"
        response = self._t.request("DELETE", path, ok=(202, 204))
        if response.status_code == 202:
            raise MoveRequested(response.json(), method="DELETE", path=path)
        self._apply({**self.data, "aliases": {key: value for key, value in self.aliases.items() if key != name}})


def _moved(data: dict, method: str, path: str) -> dict:
    """An alias the server moved, or MoveRequested for the move request it made instead (202)."""
    if "signature_check" in data:
        raise MoveRequested(data, method=method, path=path)
    return data
def _with_provenance(metadata: dict | None, captured: dict) -> dict | None:
    """`metadata` with the captured provenance beneath the keys it gives itself."""
    if not captured:
        return metadata
    merged = dict(metadata or {})
    given = merged.get("provenance")
    if given is None:
        merged["provenance"] = captured
    elif isinstance(given, Mapping):
        merged["provenance"] = {**captured, **given}
    return merged


def _record_ids(model: Model, records: Iterable[Any]) -> list[str]:
    context: Context | None = None
    ids = []
    for item in records:
        if isinstance(item, (Record, RecordRef)):
            ids.append(str(item.id))
        elif isinstance(item, Mapping):
            if item.get("id"):
                ids.append(str(item["id"]))
                continue
            if context is None:
                context = Context._from_json({"slug": model.context}, registry=model.registry)
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

@dataclass(eq=False, repr=False, kw_only=True)
class Version(_Metrics, _Resource):
    """A version of `model`. `format_summaries` are the formats as the version lists them
    (kind, status, size, sha256); `formats()` / `format(kind)` read them whole."""

    model: Model
    id: str = _json("")
    model_id: str = _json("", key="model")
    number: int = _json(0)
    name: str = _json("")
    description: str = _json("")
    tags: list[str] = _json(factory=list)
    hyperparameters: dict = _json(factory=dict)
    config: dict = _json(factory=dict)
    framework: str = _json("")
    framework_version: str = _json("")
    model_type: str = _json("")  # "<framework>:<framework_version>"
    records: list[RecordRef] = _json(factory=list, convert=_rows(RecordRef))
    metadata: dict = _json(factory=dict)
    signature: dict | None = _json(None)
    external_files: list[dict] = _json(factory=list)
    status: str = _json("")  # draft | published
    format_summaries: list[FormatSummary] = _json(factory=list, key="formats", convert=_rows(FormatSummary))
    aliases: list[str] = _json(factory=list)
    published_by: str | None = _json(None)
    published_at: datetime | None = _json(None, convert=_timestamp)
    created_by: str | None = _json(None)
    created_at: datetime | None = _json(None, convert=_timestamp)
    updated_by: str | None = _json(None)
    updated_at: datetime | None = _json(None, convert=_timestamp)
    url: str = _json("")

    def __repr__(self) -> str:
        return f"<Version {self.model.context}/{self.model.name} v{self.number} {self.status}>"

    @property
    def signatures(self) -> dict[str, dict]:
        """The contract as {signature name: {"inputs", "outputs"}}; a plain signature is "predict"."""
        from registry_client.signature import signatures_of

        return signatures_of(self.signature)

    @property
    def registry(self) -> Registry:
        return self.model.registry

    @property
    def _t(self) -> Transport:
        return self.registry._transport

    @property
    def _path(self) -> str:
        return f"models/{segment(self.model_id or self.model.id)}/versions/{int(self.number)}/"

    def refresh(self) -> Version:
        self._apply(self._t.get(self._path))
        return self

    def update(self, **fields) -> Version:
        """Change fields of a draft (409 once published): name, description, tags,
        hyperparameters, config, framework, framework_version, records, metadata, signature.
        JSON fields are replaced whole; see `update_metadata` to merge keys."""
        body = _version_body(self.model, **fields)
        self._apply(self._t.patch(self._path, body))
        return self

    def update_metadata(self, values: Mapping[str, Any] | None = None, /, **keys: Any) -> Version:
        """Merge keys into `metadata` (top level; other keys are kept).

        `v.update_metadata(provenance={"commit": "abc"}, taxonomy={...})`. The read-merge-write
        is not atomic: two clients merging at once can lose one of the writes."""
        merged = {**self.refresh().metadata, **dict(values or {}), **keys}
        self._apply(self._t.patch(self._path, {"metadata": merged}))
        return self

    def delete(self) -> None:
        """Delete this version and its files (admins; irreversible; its number is not reused)."""
        self._t.delete(self._path)

    # publish --------------------------------------------------------------------------
    def wait_ready(self, *, timeout: float = 600.0, interval: float = 0.5) -> list[Format]:
        """Wait until the workers have hashed and inspected every file.

        Returns the formats when all are `ready`; raises Conflict (code `not_ready`) naming the
        file when one ends `review` (naming the imports a publisher must approve), `corrupt`,
        `quarantined` or `failed`, or when `timeout` passes."""
        deadline = time.monotonic() + timeout
        while True:
            formats = self.formats()
            bad = [f for f in formats if f.status in FINAL_BAD]
            if bad:
                first = bad[0]
                if first.status == "review":
                    raise Conflict(_review_message(first), status=409, code="not_ready", field=first.kind)
                raise Conflict(f"The {first.kind} file is {first.status}: {first.status_message or 'see its report'}.",
                               status=409, code="not_ready", field=first.kind)
            if all(f.status in FINAL_OK for f in formats):
                return formats
            if time.monotonic() >= deadline:
                pending = ", ".join(f"{f.kind} ({f.status})" for f in formats if f.status not in FINAL_OK)
                raise Conflict(f"Files still not ready after {timeout:g} s: {pending}.", status=409, code="not_ready")
            time.sleep(interval)
            interval = min(interval * 1.5, 5.0)

    def publish(self, *, wait: bool = True, timeout: float = 600.0) -> Version:
        """Publish (freeze) the version. With `wait` (default), first wait for the workers to
        finish with every file, since the registry refuses to publish before."""
        if wait:
            self.wait_ready(timeout=timeout)
        self._apply(self._t.post(f"{self._path}publish/"))
        return self

    # formats --------------------------------------------------------------------------
    def formats(self) -> list[Format]:
        """The version's formats, whole: kind, filename, size, status, md5, sha256, required,
        fail_on_tamper, report..."""
        return [Format._from_json(item, version=self) for item in self._t.paginate(f"{self._path}formats/")]

    def format(self, kind: str) -> Format:
        """One format by kind (NotFound if the version has none of that kind)."""
        return Format._from_json(self._t.get(f"{self._path}formats/{segment(kind)}/"), version=self)

    def update_format(self, kind: str, *, required: bool | None = None,
                      fail_on_tamper: bool | None = None) -> Format:
        """Change a format's manifest flags (until publish)."""
        body = {k: v for k, v in (("required", required), ("fail_on_tamper", fail_on_tamper)) if v is not None}
        return Format._from_json(self._t.patch(f"{self._path}formats/{segment(kind)}/", body), version=self)

    def _ensure_format(self, kind: str, *, required: bool, fail_on_tamper: bool) -> None:
        try:
            self._t.post(f"{self._path}formats/", {"kind": kind, "required": required, "fail_on_tamper": fail_on_tamper})
        except Conflict as exc:
            if exc.code != "kind_exists":
                raise
            current = self.format(kind)
            if (current.required, current.fail_on_tamper) != (required, fail_on_tamper):
                self.update_format(kind, required=required, fail_on_tamper=fail_on_tamper)

    def upload(self, kind: str, path: str | os.PathLike, *, required: bool = True, fail_on_tamper: bool = True,
               progress: bool | None = None, filename: str | None = None, wait: bool = False,
               timeout: float = 600.0, parallel: int = 4) -> Format:
        """Upload a file as the format `kind` (pkl, joblib, pt, onnx, ...), replacing any earlier one.

        The file is streamed twice, never loaded whole: once to compute its SHA-256, sent as
        X-Checksum-Sha256 so the registry verifies the stored bytes, then as the PUT body. A
        transient failure restarts the PUT (up to the registry's `retries`). On a registry that
        stores files on S3, the file goes straight to the bucket instead, in parts sent
        `parallel` at a time, and an interrupted upload resumes from the parts already stored. `required` and
        `fail_on_tamper` go into the model manifest. A folder given as the kind `artifact` (one
        `registry_client.prepare` wrote) is zipped first. With `wait`, returns once the workers
        have hashed and inspected the file (Conflict if it ends corrupt/quarantined/failed).
        """
        source = Path(path)
        if source.is_dir():
            return self._upload_folder(kind, source, required=required, fail_on_tamper=fail_on_tamper,
                                       progress=progress, filename=filename, wait=wait, timeout=timeout,
                                       parallel=parallel)
        if not source.is_file():
            raise FileNotFoundError(f"No such file: {source}")
        show = transfer.want_progress(self.registry.progress if progress is None else progress)
        digests = transfer.hash_file(source, md5=False, progress=show)
        self._ensure_format(kind, required=required, fail_on_tamper=fail_on_tamper)
        data = transfer.upload_file(self._t, f"{self._path}formats/{segment(kind)}/", source,
                                    sha256=digests.sha256, size=digests.size, filename=filename or source.name,
                                    progress=show, timeout=timeout, parallel=parallel)
        uploaded = Format._from_json(data, version=self)
        if wait:
            self.wait_ready(timeout=timeout)
            uploaded = self.format(kind)
        return uploaded

    def _upload_folder(self, kind: str, folder: Path, *, filename: str | None, **options) -> Format:
        """A model artifact folder (see registry_client.prepare), zipped on the way."""
        from registry_client.artifact import zip_folder

        if kind != "artifact":
            raise ValueError(f"{folder} is a folder: upload it as the kind 'artifact' (a zipped model artifact), "
                             f"not {kind!r}.")
        with tempfile.TemporaryDirectory(prefix="registry-artifact-") as scratch:
            archive = zip_folder(folder, Path(scratch) / f"{folder.resolve().name or 'artifact'}.zip")
            return self.upload(kind, archive, filename=filename or archive.name, **options)

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
        fmt = self.format(kind)
        status = fmt.status
        if status != "ready" and not acknowledge_not_ready:
            message = (_review_message(fmt) if status == "review" else
                       f"The {kind} file is {status}: {fmt.status_message or 'not ready'}.")
            raise Conflict(f"{message} Pass acknowledge_not_ready=True to download it anyway (audited).",
                           status=409, code="not_ready", field=kind)
        dest = Path(dest)
        target = dest / fmt.filename if dest.is_dir() or str(dest).endswith(os.sep) else dest
        expected_sha = fmt.sha256 or fmt.declared_sha256
        expected_md5 = fmt.md5
        if not expected_sha:
            warnings.warn(f"The registry has no checksum for the {kind} file yet: it is downloaded unverified.",
                          RuntimeWarning, stacklevel=2)
        show = transfer.want_progress(self.registry.progress if progress is None else progress)
        url = f"{self._path}formats/{segment(kind)}/file"
        if status != "ready":
            url += f"?acknowledge={segment(status)}"
        got = transfer.download_to(self._t, url, target, progress=show, expected_size=fmt.size)
        problem = None
        if expected_sha and got.sha256 != expected_sha:
            problem = ("sha256", expected_sha, got.sha256)
        elif expected_md5 and got.md5 != expected_md5:
            problem = ("md5", expected_md5, got.md5)
        if problem is None:
            return transfer.place(got.path, target)
        algorithm, expected, actual = problem
        strict = fmt.fail_on_tamper if fail_on_tamper is None else fail_on_tamper
        message = (f"The {kind} file of {self.model.name} v{self.number} does not match its "
                   f"{algorithm}: expected {expected}, got {actual}.")
        self.registry.report_tamper(self.model_id or self.model.id, self.number, file=kind, reason="checksum_mismatch",
                                    expected=expected, actual=actual, detail=message, fail_on_tamper=strict)
        if strict:
            transfer.discard(got.path)
            raise TamperError(message, file=kind, reason="checksum_mismatch", expected=expected, actual=actual)
        warnings.warn(message, TamperWarning, stacklevel=2)
        return transfer.place(got.path, target)

    def approve_imports(self, kind: str, reason: str) -> Format:
        """Approve the third-party imports of a file in review (publishers): they become trusted
        in the context, with `reason` kept beside them, and the file becomes ready."""
        return Format._from_json(self._t.post(f"{self._path}formats/{segment(kind)}/approve-imports/",
                                              {"reason": reason}), version=self)

    def delete_format(self, kind: str) -> None:
        """Delete a format (and its file) of a draft."""
        self._t.delete(f"{self._path}formats/{segment(kind)}/")

    # training records -----------------------------------------------------------------
    def track_record(self, uri: str, checksum: str = "", *, name: str | None = None,
                     description: str = "") -> Record:
        """Link a dataset stored elsewhere (by URI and checksum) to this draft version.

        It is a training record of the context (name, uri, checksum), created or reused by
        name (default: the last part of the URI), and added to the version's records.
        """
        name = name or _name_from_uri(uri)
        context = Context._from_json({"slug": self.model.context or self.model.refresh().context},
                                     registry=self.registry)
        record = context.record(name, uri=uri, checksum=checksum or None, description=description, create=True)
        current = [str(item.id) for item in self.refresh().records]
        if str(record.id) not in current:
            self._apply(self._t.patch(self._path, {"records": [*current, str(record.id)]}))
        return record

    def add_external_file(self, name: str, source_uri: str, *, sha256: str | None = None,
                          path: str | os.PathLike | None = None, md5: str | None = None, size: int | None = None,
                          filename: str | None = None, required: bool = True, fail_on_tamper: bool = True) -> Version:
        """List a file the registry does not store (`s3://`, `gs://`, `https://`, `data://`) in
        this draft's manifest, by name (not a format kind). Give its `sha256` (and `md5`, `size`),
        or `path` to a local copy to compute them from. Consumers fetch it and verify it like
        the registry's own files. An entry of the same name is replaced."""
        entry: dict[str, Any] = {"name": name, "source_uri": source_uri, "required": required,
                                 "fail_on_tamper": fail_on_tamper}
        if path is not None:
            digests = transfer.hash_file(path)
            if sha256 and sha256.lower() != digests.sha256:
                raise ValueError(f"{path} does not have the SHA-256 given ({sha256}); it has {digests.sha256}.")
            sha256, md5, size = digests.sha256, digests.md5, digests.size
        if not sha256:
            raise ValueError("An external file needs its sha256 (or a path to a local copy to compute it).")
        entry["sha256_checksum"] = sha256
        if md5:
            entry["md5_checksum"] = md5
        if size is not None:
            entry["size"] = size
        if filename:
            entry["filename"] = filename
        current = [item for item in self.refresh().external_files if item.get("name") != name]
        self._apply(self._t.patch(self._path, {"external_files": [*current, entry]}))
        return self

    def remove_external_file(self, name: str) -> Version:
        """Take an external file out of this draft's manifest."""
        current = self.refresh().external_files
        if not any(item.get("name") == name for item in current):
            raise KeyError(f"No external file {name!r}; the version lists: "
                           f"{', '.join(item.get('name', '') for item in current) or 'none'}.")
        self._apply(self._t.patch(self._path, {"external_files": [i for i in current if i.get("name") != name]}))
        return self

    # manifests ------------------------------------------------------------------------
    def manifest(self, *, frozen: bool = False) -> dict:
        """The model manifest as JSON; frozen adds checksums, timestamp and lock_checksum
        (Conflict until every file is ready)."""
        return self._t.get(f"{self._path}manifest/", frozen="true" if frozen else None)

    def freeze(self, path: str | os.PathLike | None = None) -> Manifest:
        """Fetch the frozen manifest, write it to `path` (JSON) when given, and return it
        (nothing is downloaded yet: `.get_model(name)` fetches and verifies a file)."""
        from registry_client.manifest import Manifest

        manifest = Manifest(_frozen_manifest(self.registry, self.model_id or self.model.id, self.number),
                            self.registry)
        manifest.verify_lock()
        if path is not None:
            manifest.save(path)
        return manifest

    def get_model(self, kind: str | None = None, *, cache_dir: str | os.PathLike | None = None) -> Path:
        """The local path of a format's file (default: the only required one), fetched through
        the frozen manifest: verified against its frozen checksums and kept in the cache (a
        second call does not download)."""
        return _fetch_verified(self.registry, self.model_id or self.model.id, self.number, kind, cache_dir=cache_dir)


# --- formats ----------------------------------------------------------------------------

@dataclass(eq=False, repr=False, kw_only=True)
class Format(_Resource):
    """One file of `version` in one serialization (`kind`), with what the registry found in it."""

    version: Version
    id: str = _json("")
    kind: str = _json("")
    status: str = _json("")  # pending, uploaded, hashing, introspecting, ready, review, corrupt, quarantined, failed
    status_message: str = _json("")
    original_filename: str = _json("")
    size: int | None = _json(None)
    content_type: str = _json("")
    md5: str = _json("")
    sha256: str = _json("")
    declared_md5: str = _json("")
    declared_sha256: str = _json("")
    report: dict = _json(factory=dict)
    required: bool = _json(True)  # listed under required_files of the manifest
    fail_on_tamper: bool = _json(True)
    uploaded_by: str | None = _json(None)
    uploaded_at: datetime | None = _json(None, convert=_timestamp)
    created_at: datetime | None = _json(None, convert=_timestamp)
    unvetted_imports: list[dict] = _json(factory=list)  # {import, module, name, called} while in review
    file_url: str = _json("")

    def __repr__(self) -> str:
        return f"<Format {self.kind} {self.filename!r} {self.status}>"

    def _key(self) -> Any:
        return (self.id, self.kind)

    @property
    def filename(self) -> str:
        """The uploaded file's name, or `<model>-v<n>.<kind>` when none was given."""
        return self.original_filename or f"{self.version.model.name or 'model'}-v{self.version.number}.{self.kind}"


@dataclass(eq=False, repr=False, kw_only=True)
class Attachment(_Resource):
    """A file of `model` itself (not of a version): a model card, a monitoring report, a plot."""

    model: Model
    id: str = _json("")
    name: str = _json("")
    size: int = _json(0)
    sha256: str = _json("")
    content_type: str = _json("")  # what the registry serves it as (application/octet-stream unless safe)
    description: str = _json("")
    uploaded_by: str | None = _json(None)
    uploaded_at: datetime | None = _json(None, convert=_timestamp)
    created_at: datetime | None = _json(None, convert=_timestamp)
    file_url: str = _json("")

    def __repr__(self) -> str:
        return f"<Attachment {self.name!r} {self.size} bytes sha256={self.sha256[:12]}>"

    def download(self, dest: str | os.PathLike = ".", *, progress: bool | None = None) -> Path:
        """Download this attachment, verified (see Model.download_attachment)."""
        return self.model.download_attachment(self.name, dest, progress=progress)


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

