"""Copy registered models from a running MLflow tracking server into a context.

    summary = Registry().import_mlflow("http://mlflow:5000", "fraud", models=["churn"])
    regctl import-mlflow --tracking-uri http://mlflow:5000 --context fraud [--model churn] [--dry-run]

Only MLflow's REST API is used (the `mlflow` package is never needed): the model registry
(`registered-models/search`, `model-versions/search`, `get-download-uri`), runs (`runs/get`,
`metrics/get-history`) and the artifact proxy (`/api/2.0/mlflow-artifacts/artifacts/...`, served
by `mlflow server --serve-artifacts`). MLflow credentials come from MLFLOW_TRACKING_TOKEN, or
MLFLOW_TRACKING_USERNAME and MLFLOW_TRACKING_PASSWORD, as for MLflow's own client.

What maps to what:
- a registered model → a model of the same name (description; tags as `key:value` labels; every
  MLflow tag verbatim in `metadata.mlflow.tags`);
- each model version, oldest first → a version (description, tags, the run's params as
  hyperparameters, the run's metrics with their whole history, step and timestamp; run id,
  source and the rest in `metadata.mlflow`);
- the version's files, from its MLmodel flavors: sklearn (pickle or cloudpickle) → `pkl`,
  onnx → `onnx`, pytorch → `pt`, anything else → `artifact`, a zip of the whole directory;
  MLmodel's signature → the version's signature;
- aliases → aliases; the legacy stages Production and Staging → the aliases `production` and
  `staging` (the newest version in that stage; an MLflow alias of that name wins).

A version is published only when MLflow's was in a stage (Production/Staging) or aliased and
its files come out `ready` from the registry's workers; the others stay drafts, and the summary
says why. Aliases can only point at published versions.

The mapping of MLflow ids to ours lives in the registry itself, in the metadata the importer
writes: each imported version carries `metadata.mlflow` = {tracking_uri, model, version, run_id,
source, ...}, written when the version is created, so an interrupted import finds its draft and
completes it; each imported model carries `metadata.mlflow` = {tracking_uri, name, tags,
versions: {MLflow version: {number, fingerprint}}}, updated after each version, so a re-run
skips what has not changed. A model of the same name that was not created by an import from the
same tracking URI is a name clash: reported, never merged.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import re
import shutil
import tempfile
import time
import unicodedata
import zipfile
from collections.abc import Callable, Iterable, Iterator
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, urlsplit, urlunsplit

import httpx

from registry_client import transfer
from registry_client.errors import Conflict, Forbidden, RegistryError
from registry_client.signature import DTYPES

if TYPE_CHECKING:
    from registry_client.client import Context, Model, Registry, Version

IMPORTER = "regctl import-mlflow"
METADATA_KEY = "mlflow"
STAGE_ALIASES = {"Production": "production", "Staging": "staging"}
MAX_MLMODEL_BYTES = 1024 * 1024
MAX_ARTIFACT_FILES = 10_000
TAG_MAX_LENGTH = 32  # the registry's limit on a tag
PAGE = 1000
RETRY_STATUSES = {429, 500, 502, 503, 504}
ALIAS = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")

# MLflow column types (mlflow.types.DataType) → the registry's dtypes.
COLUMN_DTYPES = {
    "boolean": "bool", "integer": "int32", "long": "int64", "float": "float32", "double": "float64",
    "string": "string", "binary": "bytes", "datetime": "datetime",
}
TENSOR_DTYPES = {"str": "string", "bytes": "bytes", "object": "object", "bool": "bool"}
# Flavors whose model is one file the registry inspects itself, in order of preference:
# (flavor, registry kind, MLmodel key of the file or folder, file inside that folder).
FILE_FLAVORS = (
    ("sklearn", "pkl", "pickled_model", None),
    ("onnx", "onnx", "data", None),
    ("pytorch", "pt", "model_data", "model.pth"),
)
FRAMEWORKS = {"sklearn": ("scikit-learn", "sklearn_version"), "onnx": ("onnx", "onnx_version"),
              "pytorch": ("pytorch", "pytorch_version")}


class MlflowError(RegistryError):
    """The MLflow tracking server refused a request, answered nonsense, or could not be reached."""


# --- the summary ----------------------------------------------------------------------

@dataclass
class ModelOutcome:
    name: str
    action: str  # created | updated | unchanged | clash | failed | would create | would update
    model_id: str = ""
    reason: str = ""


@dataclass
class VersionOutcome:
    model: str
    mlflow_version: str
    action: str  # imported | resumed | updated | unchanged | skipped | failed | would import | would update
    number: int | None = None
    status: str = ""  # published | draft
    files: list[str] = field(default_factory=list)
    bytes: int = 0
    reason: str = ""


@dataclass
class AliasOutcome:
    model: str
    alias: str
    mlflow_version: str
    action: str  # set | moved | unchanged | skipped | failed | would set
    number: int | None = None
    reason: str = ""


@dataclass
class ImportSummary:
    """What an import did (or, with dry_run, would do). `failed` is true when anything failed
    or clashed; drafts that could not be published are not failures (their reason says why)."""

    tracking_uri: str
    context: str
    dry_run: bool = False
    models: list[ModelOutcome] = field(default_factory=list)
    versions: list[VersionOutcome] = field(default_factory=list)
    aliases: list[AliasOutcome] = field(default_factory=list)

    @property
    def failed(self) -> bool:
        return bool(self.clashes or self.errors)

    @property
    def clashes(self) -> list[ModelOutcome]:
        return [m for m in self.models if m.action == "clash"]

    @property
    def errors(self) -> list[str]:
        """What failed (not the clashes): each as 'what: why'."""
        return ([f"{m.name}: {m.reason}" for m in self.models if m.action == "failed"]
                + [f"{v.model} v{v.mlflow_version}: {v.reason}" for v in self.versions if v.action == "failed"]
                + [f"{a.model}@{a.alias}: {a.reason}" for a in self.aliases if a.action == "failed"])

    @property
    def files(self) -> int:
        return sum(len(v.files) for v in self.versions if v.bytes)

    @property
    def bytes(self) -> int:
        return sum(v.bytes for v in self.versions)

    @property
    def skipped(self) -> list[tuple[str, str]]:
        """(what, why) of everything not imported, not published, or not aliased."""
        rows = [(m.name, m.reason) for m in self.models if m.action in ("clash", "failed")]
        rows += [(f"{v.model} v{v.mlflow_version}", v.reason) for v in self.versions if v.reason]
        rows += [(f"{a.model}@{a.alias}", a.reason) for a in self.aliases if a.action in ("skipped", "failed")]
        return rows

    def to_dict(self) -> dict:
        return {"tracking_uri": self.tracking_uri, "context": self.context, "dry_run": self.dry_run,
                "failed": self.failed, "files": self.files, "bytes": self.bytes,
                "models": [asdict(m) for m in self.models], "versions": [asdict(v) for v in self.versions],
                "aliases": [asdict(a) for a in self.aliases]}


# --- MLflow's REST API ---------------------------------------------------------------------

def normalize_tracking_uri(uri: str) -> tuple[str, tuple[str, str] | None]:
    """(the URI as the mapping records it: no credentials, no trailing slash; basic auth from it)."""
    parts = urlsplit(str(uri).strip())
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"--tracking-uri must be the http(s) URL of an MLflow tracking server, not {uri!r}.")
    auth = (parts.username or "", parts.password or "") if parts.username else None
    netloc = parts.hostname + (f":{parts.port}" if parts.port else "")
    return urlunsplit((parts.scheme, netloc, parts.path.rstrip("/"), "", "")), auth


class MlflowREST:
    """A small client of MLflow's REST API: JSON reads with retries, and streamed downloads."""

    def __init__(self, tracking_uri: str, *, timeout: float = 60.0, retries: int = 3, retry_backoff: float = 0.5):
        self.uri, auth = normalize_tracking_uri(tracking_uri)
        headers = {"Accept": "application/json"}
        token = os.environ.get("MLFLOW_TRACKING_TOKEN")
        if token:
            headers["Authorization"] = f"Bearer {token}"
        elif os.environ.get("MLFLOW_TRACKING_USERNAME"):
            auth = (os.environ["MLFLOW_TRACKING_USERNAME"], os.environ.get("MLFLOW_TRACKING_PASSWORD", ""))
        verify = os.environ.get("MLFLOW_TRACKING_INSECURE_TLS", "").lower() not in ("1", "true")
        self.retries = retries
        self.retry_backoff = retry_backoff
        self.client = httpx.Client(base_url=self.uri, headers=headers, auth=auth, timeout=timeout, verify=verify)

    def close(self) -> None:
        self.client.close()

    def _send(self, path: str, params: dict | None = None, *, stream: bool = False) -> httpx.Response:
        attempt = 0
        while True:
            try:
                request = self.client.build_request("GET", path, params=params)
                response = self.client.send(request, stream=stream)
            except httpx.HTTPError as exc:
                if attempt >= self.retries:
                    raise MlflowError(f"MLflow at {self.uri} could not be reached: {exc}", method="GET",
                                      path=path) from None
            else:
                if response.status_code not in RETRY_STATUSES or attempt >= self.retries:
                    if response.status_code >= 400:
                        if stream:
                            response.read()
                        raise self._error(response, path)
                    return response
                response.close()
            attempt += 1
            time.sleep(self.retry_backoff * 2 ** (attempt - 1))

    @staticmethod
    def _error(response: httpx.Response, path: str) -> MlflowError:
        try:
            body = response.json()
        except ValueError:
            body = {}
        body = body if isinstance(body, dict) else {}
        message = str(body.get("message") or response.text[:200] or response.reason_phrase)
        return MlflowError(f"MLflow answered {response.status_code}: {message}", status=response.status_code,
                           code=str(body.get("error_code") or ""), method="GET", path=path, body=body)

    def get(self, path: str, **params: Any) -> dict:
        response = self._send(f"/api/2.0/mlflow/{path}", {k: v for k, v in params.items() if v is not None})
        try:
            data = response.json()
        except ValueError:
            raise MlflowError(f"MLflow answered {path} with something that is not JSON; is {self.uri} an MLflow "
                              "tracking server?") from None
        if not isinstance(data, dict):
            raise MlflowError(f"MLflow answered {path} with a JSON {type(data).__name__}, not an object.")
        return data

    def pages(self, path: str, key: str, **params: Any) -> Iterator[dict]:
        token = None
        while True:
            data = self.get(path, **params, page_token=token)
            yield from data.get(key) or []
            token = data.get("next_page_token")
            if not token:
                return

    # the model registry ---------------------------------------------------------------
    def registered_models(self, names: Iterable[str] | None = None) -> list[dict]:
        if names:
            found = []
            for name in names:
                try:
                    found.append(self.get("registered-models/get", name=name)["registered_model"])
                except MlflowError as exc:
                    if exc.status != 404:
                        raise
                    found.append({"name": name, "missing": True})
            return found
        return list(self.pages("registered-models/search", "registered_models", max_results=PAGE))

    def model_versions(self, name: str) -> list[dict]:
        quoted = name.replace("'", "\\'")
        found = self.pages("model-versions/search", "model_versions", filter=f"name='{quoted}'", max_results=PAGE)
        return sorted(found, key=lambda item: int(item.get("version") or 0))

    def download_uri(self, name: str, version: str) -> str:
        return str(self.get("model-versions/get-download-uri", name=name, version=version).get("artifact_uri") or "")

    # runs -------------------------------------------------------------------------------
    def run(self, run_id: str) -> dict:
        return self.get("runs/get", run_id=run_id).get("run") or {}

    def metric_history(self, run_id: str, key: str) -> list[dict]:
        return list(self.pages("metrics/get-history", "metrics", run_id=run_id, metric_key=key, max_results=25_000))

    # the artifact proxy -------------------------------------------------------------------
    def list_artifacts(self, root: str) -> list[tuple[str, int]]:
        """Every file under `root` (a path of the artifact proxy): (relative path, size)."""
        found: list[tuple[str, int]] = []
        folders = [""]
        while folders:
            folder = folders.pop()
            where = f"{root}/{folder}".rstrip("/")
            response = self._send("/api/2.0/mlflow-artifacts/artifacts", {"path": where})
            for item in response.json().get("files") or []:
                name = str(item.get("path") or "").rsplit("/", 1)[-1]
                relative = f"{folder}/{name}" if folder else name
                _check_relative(relative)
                if item.get("is_dir"):
                    folders.append(relative)
                else:
                    found.append((relative, int(item.get("file_size") or 0)))
                if len(found) > MAX_ARTIFACT_FILES:
                    raise MlflowError(f"More than {MAX_ARTIFACT_FILES} files under {root}.")
        return sorted(found)

    def download(self, root: str, relative: str, target: Path, *, expected_size: int | None = None) -> int:
        """Stream one artifact file to `target`; its size is checked against the listing's."""
        response = self._send(f"/api/2.0/mlflow-artifacts/artifacts/{quote(f'{root}/{relative}')}", stream=True)
        size = 0
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            with open(target, "wb") as handle:
                for block in response.iter_bytes(transfer.CHUNK):
                    handle.write(block)
                    size += len(block)
        except httpx.HTTPError as exc:
            raise MlflowError(f"The download of {relative} from MLflow broke off: {exc}") from None
        finally:
            response.close()
        if expected_size and size != expected_size:
            raise MlflowError(f"MLflow sent {size} bytes of {relative}; its listing says {expected_size}.")
        return size


def _check_relative(relative: str) -> None:
    """A path from MLflow's listing names a file inside the version's folder, nothing else."""
    parts = relative.split("/")
    if not relative or relative.startswith("/") or any(p in ("", ".", "..") or "\\" in p or "\x00" in p
                                                         for p in parts):
        raise MlflowError(f"MLflow listed an artifact with an unsafe path: {relative!r}.")


def proxy_root(artifact_uri: str) -> str:
    """The artifact proxy's path of an `mlflow-artifacts:` URI; MlflowError for any other scheme."""
    parts = urlsplit(artifact_uri)
    if parts.scheme != "mlflow-artifacts":
        raise MlflowError(f"The files are at {artifact_uri!r}, which the tracking server does not serve: the import "
                          "needs `mlflow server --serve-artifacts` (artifact URIs mlflow-artifacts:/...).",
                          code="artifacts_not_proxied")
    root = parts.path.strip("/")
    if not root or any(p in ("..", ".") for p in root.split("/")):
        raise MlflowError(f"Unusable artifact URI {artifact_uri!r}.")
    return root


# --- reading a model version ---------------------------------------------------------------

def _tags(items: Any) -> dict[str, str]:
    if isinstance(items, dict):
        return {str(k): str(v) for k, v in items.items()}
    return {str(item.get("key")): str(item.get("value") or "") for item in items or [] if isinstance(item, dict)}


def registry_tags(tags: dict[str, str]) -> list[str]:
    """MLflow's key/value tags as the registry's labels: `key:value` (or `key` for an empty value),
    leaving out MLflow's own `mlflow.*` tags and any that do not fit a label (kept in metadata)."""
    labels = []
    for key, value in sorted(tags.items()):
        if key.startswith("mlflow."):
            continue
        label = f"{key}:{value}" if value else key
        if 0 < len(label) <= TAG_MAX_LENGTH and not any(unicodedata.category(c) == "Cc" for c in label) \
                and "," not in label:
            labels.append(label)
    return labels


def convert_signature(mlmodel: dict) -> dict | None:
    """MLmodel's signature (column or tensor specs, as JSON strings) in the registry's words."""
    signature = mlmodel.get("signature")
    if not isinstance(signature, dict):
        return None
    result = {}
    for part, default in (("inputs", "input"), ("outputs", "output")):
        raw = signature.get(part)
        try:
            specs = json.loads(raw) if isinstance(raw, str) else (raw or [])
        except ValueError:
            return None
        if not isinstance(specs, list):
            return None
        fields = []
        for index, spec in enumerate(specs):
            if not isinstance(spec, dict):
                return None
            name = str(spec.get("name") or (default if len(specs) == 1 else f"{default}_{index}"))
            if spec.get("type") == "tensor":
                tensor = spec.get("tensor-spec") or {}
                dtype = str(tensor.get("dtype") or "object")
                dtype = TENSOR_DTYPES.get(dtype, dtype)
                shape = [int(d) if isinstance(d, int) and d >= -1 else -1 for d in tensor.get("shape") or [-1]]
            else:
                dtype = COLUMN_DTYPES.get(str(spec.get("type")), "object")
                shape = [-1]
            fields.append({"name": name, "dtype": dtype if dtype in DTYPES else "object", "shape": shape})
        result[part] = fields
    return result if result.get("inputs") or result.get("outputs") else None


@dataclass
class Source:
    """What a model version's files become: `kind` from `files` (relative paths in its folder)."""

    kind: str
    files: list[tuple[str, int]]
    filename: str
    framework: str = ""
    framework_version: str = ""
    signature: dict | None = None
    flavors: list[str] = field(default_factory=list)  # MLmodel's, kept in the version's metadata

    @property
    def size(self) -> int:
        return sum(size for _, size in self.files)


def choose_source(mlmodel: dict, listing: list[tuple[str, int]], model_name: str, version: str) -> Source:
    """The format a version's folder becomes, from its MLmodel flavors."""
    flavors = mlmodel.get("flavors") if isinstance(mlmodel.get("flavors"), dict) else {}
    sizes = dict(listing)
    signature = convert_signature(mlmodel)
    base = re.sub(r"[^A-Za-z0-9._-]+", "-", model_name).strip("-") or "model"
    names = sorted(str(name) for name in flavors)
    for flavor, kind, key, inner in FILE_FLAVORS:
        options = flavors.get(flavor)
        if not isinstance(options, dict):
            continue
        if flavor == "sklearn" and options.get("serialization_format", "cloudpickle") not in ("pickle", "cloudpickle"):
            continue  # skops: not a pickle; the zip keeps it
        relative = str(options.get(key) or "").strip("/")
        if inner and relative:
            relative = f"{relative}/{inner}"
        if relative in sizes:
            framework, version_key = FRAMEWORKS[flavor]
            return Source(kind, [(relative, sizes[relative])], f"{base}-v{version}.{kind}", framework,
                          str(options.get(version_key) or ""), signature, names)
    named = [name for name in flavors if name != "python_function"]
    framework = named[0] if named else "mlflow.pyfunc"
    framework_version = str((flavors.get(framework) or {}).get(f"{framework}_version") or "") if named else \
        str(mlmodel.get("mlflow_version") or "")
    return Source("artifact", listing, f"{base}-v{version}.zip", framework, framework_version, signature, names)


def zip_folder(folder: Path, files: Iterable[str], target: Path) -> None:
    """A zip of the files, streamed member by member, with fixed dates: the same folder always
    gives the same bytes (so a re-run sees the same checksum)."""
    with zipfile.ZipFile(target, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for relative in sorted(files):
            info = zipfile.ZipInfo(relative, date_time=(1980, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            with open(folder / relative, "rb") as source, archive.open(info, "w", force_zip64=True) as member:
                shutil.copyfileobj(source, member, transfer.CHUNK)


def _fingerprint(*parts: Any) -> str:
    text = json.dumps(parts, sort_keys=True, default=str, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()


def _metric_value(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)  # NaN and infinities are not JSON: the registry keeps them as text
    return value


def _ms(value: Any) -> int | None:
    try:
        return round(datetime.fromisoformat(str(value)).timestamp() * 1000)
    except (TypeError, ValueError):
        return None


@dataclass
class _Planned:
    """One MLflow version as the importer sees it."""

    mlflow: dict
    run: dict
    version: str
    eligible: bool
    aliases: list[str]
    fingerprint: str = ""
    existing: Version | None = None
    synced: dict = field(default_factory=dict)


# --- the import ---------------------------------------------------------------------------

class Importer:
    def __init__(self, registry: Registry, tracking_uri: str, context: str, *, models: Iterable[str] | None = None,
                 dry_run: bool = False, timeout: float = 600.0, progress: bool | None = None,
                 on_version: Callable[[VersionOutcome], None] | None = None):
        self.registry = registry
        self.rest = MlflowREST(tracking_uri)
        self.tracking_uri = self.rest.uri
        self.context_slug = context
        self.names = list(dict.fromkeys(models or []))
        self.dry_run = dry_run
        self.timeout = timeout
        self.show = transfer.want_progress(registry.progress if progress is None else progress)
        self.on_version = on_version
        self.summary = ImportSummary(self.tracking_uri, context, dry_run)
        self._runs: dict[str, dict] = {}

    def run(self) -> ImportSummary:
        try:
            context = self.registry.context(self.context_slug)
            registered = self.rest.registered_models(self.names or None)
            listed = []
            for item in registered:
                if item.get("missing"):
                    listed.append((item, [], MlflowError(f"MLflow has no registered model named {item['name']!r}.")))
                    continue
                try:
                    listed.append((item, self.rest.model_versions(item["name"]), None))
                except MlflowError as exc:
                    listed.append((item, [], exc))
            bar = _bar(self.show, sum(len(versions) for _, versions, _ in listed))
            try:
                for item, versions, problem in listed:
                    if problem is not None:
                        self.summary.models.append(ModelOutcome(item["name"], "failed", reason=str(problem)))
                        continue
                    self._import_model(context, item, versions, bar)
            finally:
                bar.close()
        finally:
            self.rest.close()
        return self.summary

    def _mark(self, version_outcome: VersionOutcome, bar) -> None:
        self.summary.versions.append(version_outcome)
        bar.set_postfix_str(f"{version_outcome.model} v{version_outcome.mlflow_version} {version_outcome.action}",
                            refresh=False)
        bar.update(1)
        if self.on_version is not None:
            self.on_version(version_outcome)

    # models ---------------------------------------------------------------------------------
    def _import_model(self, context: Context, item: dict, versions: list[dict], bar) -> None:
        name = str(item.get("name") or "")
        tags = _tags(item.get("tags"))
        description = str(item.get("description") or "")
        outcome = ModelOutcome(name, "unchanged")
        self.summary.models.append(outcome)
        model = context._find(name)
        mark = (model.metadata.get(METADATA_KEY) if model is not None else None) or {}
        if model is not None and (mark.get("tracking_uri") != self.tracking_uri or mark.get("name") != name):
            origin = (f"imported from {mark.get('tracking_uri')} (MLflow model {mark.get('name')!r})"
                      if mark.get("tracking_uri") else "not created by an import from this MLflow server")
            outcome.action, outcome.model_id = "clash", model.id
            outcome.reason = (f"name clash: context '{context.slug}' already has a model '{model.name}', {origin}; "
                              "rename one of them, nothing was merged")
            for mv in versions:
                self._mark(VersionOutcome(name, str(mv.get("version")), "skipped", reason="the model's name clashes"),
                           bar)
            return
        wanted_mark = {**mark, "tracking_uri": self.tracking_uri, "name": name, "imported_by": IMPORTER, "tags": tags}
        wanted_mark.setdefault("versions", {})
        try:
            if model is None:
                outcome.action = "would create" if self.dry_run else "created"
                if not self.dry_run:
                    model = context.create_model(name, description=description, tags=registry_tags(tags),
                                                 metadata={METADATA_KEY: wanted_mark})
                    outcome.model_id = model.id
            else:
                outcome.model_id = model.id
                changes = {}
                if model.description != description:
                    changes["description"] = description
                if sorted(model.tags, key=str.casefold) != sorted(registry_tags(tags), key=str.casefold):
                    changes["tags"] = registry_tags(tags)
                if mark.get("tags") != tags or mark.get("imported_by") != IMPORTER:
                    changes["metadata"] = {**model.metadata, METADATA_KEY: wanted_mark}
                if changes:
                    outcome.action = "would update" if self.dry_run else "updated"
                    if not self.dry_run:
                        model.update(**changes)
        except (RegistryError, ValueError) as exc:
            outcome.action, outcome.reason = "failed", str(exc)
            for mv in versions:
                self._mark(VersionOutcome(name, str(mv.get("version")), "skipped", reason="the model failed"), bar)
            return

        aliases = {str(a.get("alias")): str(a.get("version")) for a in item.get("aliases") or []}
        by_version: dict[str, list[str]] = {}
        for alias, number in aliases.items():
            by_version.setdefault(number, []).append(alias)
        ours = self._imported_versions(model) if model is not None else {}
        blocked = ""
        for mv in versions:
            number = str(mv.get("version"))
            planned = _Planned(mv, {}, number, mv.get("current_stage") in STAGE_ALIASES or bool(by_version.get(number)),
                               sorted(by_version.get(number, [])), existing=ours.get(number),
                               synced=(model.metadata.get(METADATA_KEY, {}).get("versions", {}).get(number, {})
                                       if model is not None else {}))
            if blocked:
                self._mark(VersionOutcome(name, number, "skipped", reason=blocked), bar)
                continue
            result = self._import_version(model, name, planned)
            self._mark(result, bar)
            if result.action == "failed" and planned.existing is None and result.number is None:
                # Numbers follow MLflow's order: a later version must not take this one's place.
                blocked = f"not imported: version {number} failed before it (order is kept)"
        self._sync_aliases(model, name, versions, aliases)

    def _imported_versions(self, model: Model) -> dict[str, Version]:
        found = {}
        for version in model.versions():
            mark = version.metadata.get(METADATA_KEY) or {}
            if mark.get("tracking_uri") == self.tracking_uri and mark.get("model") == model.metadata.get(
                    METADATA_KEY, {}).get("name"):
                found[str(mark.get("version"))] = version
        return found

    # versions -------------------------------------------------------------------------------
    def _run_of(self, run_id: str) -> dict:
        if run_id and run_id not in self._runs:
            try:
                self._runs[run_id] = self.rest.run(run_id)
            except MlflowError as exc:
                if exc.status != 404:
                    raise
                self._runs[run_id] = {}
        return self._runs.get(run_id, {})

    def _import_version(self, model: Model | None, name: str, planned: _Planned) -> VersionOutcome:
        mv = planned.mlflow
        outcome = VersionOutcome(name, planned.version, "unchanged")
        if planned.existing is not None:
            outcome.number, outcome.status = planned.existing.number, planned.existing.status
        if mv.get("status", "READY") != "READY":
            outcome.action, outcome.reason = "skipped", f"MLflow's registration status is {mv.get('status')}"
            return outcome
        try:
            run = self._run_of(str(mv.get("run_id") or ""))
            data = run.get("data") or {}
            params = {str(p.get("key")): str(p.get("value")) for p in data.get("params") or []}
            latest = sorted((m.get("key"), m.get("step"), m.get("timestamp"), m.get("value"))
                            for m in data.get("metrics") or [])
            planned.run = run
            planned.fingerprint = _fingerprint(mv.get("description"), _tags(mv.get("tags")), mv.get("current_stage"),
                                               planned.aliases, mv.get("source"), mv.get("run_id"), params, latest)
            existing = planned.existing
            if existing is not None and planned.synced.get("fingerprint") == planned.fingerprint:
                if existing.status == "published":
                    return outcome
                if not planned.eligible or self.dry_run:
                    outcome.reason = self._draft_reason(existing, planned)
                    return outcome
                # Nothing changed in MLflow, but a draft may pass the gate now (imports approved).
                self._gate(existing, planned, outcome)
                outcome.status = existing.status
                if existing.status == "published":
                    outcome.action = "published"
                return outcome
            if self.dry_run:
                return self._plan(outcome, planned, params)
            if existing is None:
                outcome.action = "imported"
                version = self._create(model, planned, params, outcome)
            else:
                version = existing
                outcome.action = "resumed" if not planned.synced else "updated"
                if version.status != "published":
                    self._update_draft(version, planned, params, outcome)
                else:
                    outcome.reason = self._published_changes(version, planned, params)
            self._copy_metrics(version, planned)
            if version.status != "published":
                self._gate(version, planned, outcome)
            outcome.number, outcome.status = version.number, version.status
            self._remember(model, planned, version)
        except (RegistryError, OSError, ValueError) as exc:
            outcome.action, outcome.reason = "failed", str(exc)
        return outcome

    def _plan(self, outcome: VersionOutcome, planned: _Planned, params: dict) -> VersionOutcome:
        outcome.action = "would import" if planned.existing is None else "would update"
        root = proxy_root(self.rest.download_uri(outcome.model, planned.version))
        listing = self.rest.list_artifacts(root)
        with tempfile.TemporaryDirectory(prefix="regctl-mlflow-") as folder:
            source = self._source(root, listing, Path(folder), outcome.model, planned.version)
        outcome.files, outcome.bytes = [source.kind], source.size
        if not planned.eligible:
            outcome.reason = self._draft_reason(None, planned)
        return outcome

    def _source(self, root: str, listing: list[tuple[str, int]], folder: Path, name: str, version: str) -> Source:
        sizes = dict(listing)
        if "MLmodel" not in sizes:
            raise MlflowError(f"No MLmodel file in {root}: not an MLflow model folder.")
        if sizes["MLmodel"] > MAX_MLMODEL_BYTES:
            raise MlflowError(f"The MLmodel file of {root} is larger than {MAX_MLMODEL_BYTES} bytes.")
        import yaml  # on use: only the importer needs it

        path = folder / "MLmodel"
        self.rest.download(root, "MLmodel", path, expected_size=sizes["MLmodel"])
        try:
            mlmodel = yaml.safe_load(path.read_text(encoding="utf-8"))
        except (yaml.YAMLError, UnicodeDecodeError) as exc:
            raise MlflowError(f"The MLmodel file of {root} is not valid YAML: {exc}") from None
        if not isinstance(mlmodel, dict):
            raise MlflowError(f"The MLmodel file of {root} is not a mapping.")
        return choose_source(mlmodel, listing, name, version)

    def _fetch(self, outcome: VersionOutcome, planned: _Planned, folder: Path) -> tuple[Source, Path]:
        """Download the version's files into `folder`; the file to upload (a zip for `artifact`)."""
        root = proxy_root(self.rest.download_uri(outcome.model, planned.version))
        listing = self.rest.list_artifacts(root)
        source = self._source(root, listing, folder / "files", outcome.model, planned.version)
        for relative, size in source.files:
            if relative != "MLmodel":  # already there: it was read to choose the format
                self.rest.download(root, relative, folder / "files" / relative, expected_size=size)
        if source.kind == "artifact":
            upload = folder / source.filename
            zip_folder(folder / "files", [relative for relative, _ in source.files], upload)
        else:
            upload = folder / "files" / source.files[0][0]
        return source, upload

    def _version_fields(self, planned: _Planned, params: dict, source: Source) -> dict:
        mv = planned.mlflow
        tags = _tags(mv.get("tags"))
        info = planned.run.get("info") or {}
        fields: dict[str, Any] = {"description": str(mv.get("description") or ""), "tags": registry_tags(tags),
                                  "hyperparameters": params, "framework": source.framework,
                                  "framework_version": source.framework_version}
        if source.signature:
            fields["signature"] = source.signature
        fields["metadata"] = {METADATA_KEY: {
            "tracking_uri": self.tracking_uri, "model": str(mv.get("name")), "version": planned.version,
            "run_id": str(mv.get("run_id") or ""), "run_name": str(info.get("run_name") or ""),
            "experiment_id": str(info.get("experiment_id") or ""), "source": str(mv.get("source") or ""),
            "user_id": str(mv.get("user_id") or ""), "created_at": mv.get("creation_timestamp"),
            "tags": tags, "flavors": source.flavors, "imported_by": IMPORTER,
        }}
        return fields

    def _create(self, model: Model, planned: _Planned, params: dict, outcome: VersionOutcome) -> Version:
        with tempfile.TemporaryDirectory(prefix="regctl-mlflow-") as folder:
            source, upload = self._fetch(outcome, planned, Path(folder))
            # The mapping is in the version from its first byte: an interrupted import finds it.
            version = model.create_version(**self._version_fields(planned, params, source))
            outcome.number = version.number
            self._upload(version, source, upload, outcome)
        return version

    def _update_draft(self, version: Version, planned: _Planned, params: dict, outcome: VersionOutcome) -> None:
        with tempfile.TemporaryDirectory(prefix="regctl-mlflow-") as folder:
            source, upload = self._fetch(outcome, planned, Path(folder))
            wanted = self._version_fields(planned, params, source)
            wanted["metadata"] = {**version.metadata, **wanted["metadata"]}
            wanted["tags"] = sorted(wanted["tags"], key=str.casefold)
            current = {**{key: getattr(version, key) for key in wanted}, "tags": sorted(version.tags, key=str.casefold)}
            changes = {key: value for key, value in wanted.items() if current[key] != value}
            if changes:
                version.update(**changes)
            self._upload(version, source, upload, outcome)

    def _upload(self, version: Version, source: Source, upload: Path, outcome: VersionOutcome) -> None:
        digests = transfer.hash_file(upload, md5=False)
        current = {f.kind: f for f in version.formats()}
        present = current.get(source.kind)
        outcome.files = [source.kind]
        if present is None or present.status == "pending" or (present.sha256 or present.declared_sha256) != digests.sha256:
            version.upload(source.kind, upload, required=True, filename=source.filename, progress=self.show,
                           timeout=self.timeout)
            outcome.bytes = digests.size
        for kind in current.keys() - {source.kind}:  # a file the MLflow version no longer has
            version.delete_format(kind)

    def _published_changes(self, version: Version, planned: _Planned, params: dict) -> str:
        mv = planned.mlflow
        changed = [label for label, ours, theirs in (
            ("description", version.description, str(mv.get("description") or "")),
            ("tags", sorted(version.tags, key=str.casefold), sorted(registry_tags(_tags(mv.get("tags"))),
                                                                    key=str.casefold)),
            ("params", version.hyperparameters, params)) if ours != theirs]
        if not changed:
            return ""
        return (f"{', '.join(changed)} changed in MLflow after version {version.number} was published here; "
                "a published version does not change")

    def _copy_metrics(self, version: Version, planned: _Planned) -> None:
        """Every value of every metric of the run, its history included, minus those already here."""
        run_id = str(planned.mlflow.get("run_id") or "")
        keys = sorted({str(m.get("key")) for m in (planned.run.get("data") or {}).get("metrics") or []})
        if not run_id or not keys:
            return
        have = {(m.get("key"), m.get("step"), _ms(m.get("wallclock"))) for m in version.metrics()}
        missing = []
        for key in keys:
            for point in self.rest.metric_history(run_id, key):
                step, stamp = int(point.get("step") or 0), int(point.get("timestamp") or 0)
                if (key, step, stamp) in have:
                    continue
                missing.append({"key": key, "value": _metric_value(point.get("value")), "step": step,
                                "wallclock": datetime.fromtimestamp(stamp / 1000, UTC)})
        if missing:
            version.log_metrics(missing)

    def _gate(self, version: Version, planned: _Planned, outcome: VersionOutcome) -> None:
        """Publish the version when MLflow's was staged or aliased and the workers pass its files."""
        if not planned.eligible:
            outcome.reason = self._draft_reason(version, planned)
            return
        try:
            version.wait_ready(timeout=self.timeout)
            version.publish(wait=False)
            outcome.reason = ""
        except Conflict as exc:
            outcome.reason = f"stays a draft: {exc.message}"
        except Forbidden as exc:
            outcome.reason = f"stays a draft: you may not publish here ({exc.message})"

    def _draft_reason(self, version: Version | None, planned: _Planned) -> str:
        if not planned.eligible:
            stage = planned.mlflow.get("current_stage") or "None"
            return f"stays a draft: in MLflow it has no alias and its stage is {stage}"
        if version is None:
            return ""
        states = ", ".join(f"{f.kind} {f.status}" for f in version.format_summaries)
        return f"stays a draft: its files are not all ready ({states or 'none'})"

    def _remember(self, model: Model, planned: _Planned, version: Version) -> None:
        """Record the MLflow version as synced in the model's metadata (re-read: other keys stay)."""
        model.refresh()
        mark = dict(model.metadata.get(METADATA_KEY) or {})
        versions = dict(mark.get("versions") or {})
        versions[planned.version] = {"number": version.number, "fingerprint": planned.fingerprint}
        mark["versions"] = versions
        model.update(metadata={**model.metadata, METADATA_KEY: mark})

    # aliases --------------------------------------------------------------------------------
    def _sync_aliases(self, model: Model | None, name: str, versions: list[dict], aliases: dict[str, str]) -> None:
        wanted = dict(aliases)
        for stage, alias in STAGE_ALIASES.items():
            staged = [str(mv.get("version")) for mv in versions if mv.get("current_stage") == stage]
            if not staged:
                continue
            newest = max(staged, key=int)
            if alias in wanted and wanted[alias] != newest:
                self.summary.aliases.append(AliasOutcome(
                    name, alias, newest, "skipped",
                    reason=f"stage {stage} (v{newest}) not made an alias: MLflow's alias '{alias}' is v{wanted[alias]}"))
                continue
            wanted[alias] = newest
        if not wanted:
            return
        outcomes = {v.mlflow_version: v for v in self.summary.versions if v.model == name}
        current = model.refresh().aliases if model is not None else {}
        for alias, mlflow_version in sorted(wanted.items()):
            result = AliasOutcome(name, alias, mlflow_version, "unchanged")
            self.summary.aliases.append(result)
            version = outcomes.get(mlflow_version)
            if not ALIAS.match(alias):
                result.action, result.reason = "skipped", "not a valid alias name here (A-Z a-z 0-9 . _ -)"
                continue
            if self.dry_run and version is not None and version.action in ("would import", "would update") \
                    and not version.reason:
                result.action, result.reason = "would set", "if its files come out ready"
                continue
            if version is None or version.number is None or version.status != "published":
                result.action = "skipped"
                why = version.reason if version is not None and version.reason else "it was not imported"
                result.reason = f"MLflow v{mlflow_version} is not published here: {why}"
                continue
            result.number = version.number
            if current.get(alias) == version.number:
                continue
            if self.dry_run:
                result.action = "would set"
                continue
            try:
                model.set_alias(alias, version.number)
                result.action = "moved" if alias in current else "set"
            except RegistryError as exc:
                result.action, result.reason = "failed", str(exc)


class _NoBar:
    def update(self, n: int = 1) -> None:
        pass

    def set_postfix_str(self, text: str, refresh: bool = True) -> None:
        pass

    def close(self) -> None:
        pass


def _bar(enabled: bool, total: int):
    if not enabled:
        return _NoBar()
    import sys

    from tqdm.auto import tqdm

    return tqdm(total=total, unit="version", desc="importing from MLflow", file=sys.stderr, dynamic_ncols=True)


def import_mlflow(registry: Registry, tracking_uri: str, context: str, *, models: Iterable[str] | None = None,
                  dry_run: bool = False, timeout: float = 600.0, progress: bool | None = None,
                  on_version: Callable[[VersionOutcome], None] | None = None) -> ImportSummary:
    """See the module's docstring; `Registry.import_mlflow` calls this."""
    return Importer(registry, tracking_uri, context, models=models, dry_run=dry_run, timeout=timeout,
                    progress=progress, on_version=on_version).run()
