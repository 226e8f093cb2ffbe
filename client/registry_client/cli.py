"""regctl: push, pull, freeze and list models, and manage a model's attachments, from the command line.

Results go to stdout, messages to stderr. The registry URL and token come from
REGISTRY_URL / REGISTRY_TOKEN or the config file (REGISTRY_CONFIG, default
~/.config/registry-client/config.toml); the token is never accepted as an argument (it
would show in `ps` and shell history) and never printed.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import sys
import warnings
from pathlib import Path
from typing import Any

from registry_client import __version__
from registry_client.client import Model, Registry, Version
from registry_client.errors import (
    BadRequest,
    ConfigError,
    Conflict,
    Forbidden,
    NotCached,
    NotFound,
    OfflineError,
    PayloadTooLarge,
    RegistryError,
    TamperError,
    Unauthorized,
)
from registry_client.manifest import Manifest

EXIT_OK, EXIT_USAGE, EXIT_ACCESS, EXIT_CONFLICT, EXIT_TAMPER, EXIT_SERVER = 0, 1, 2, 3, 4, 5
EXIT_CODES = f"""exit codes:
  {EXIT_OK}  success
  {EXIT_USAGE}  usage error, bad input (400/413), missing configuration, or --offline for a command
     that needs the registry
  {EXIT_ACCESS}  not found, forbidden or not authenticated (404/403/401); offline: a file not cached
  {EXIT_CONFLICT}  conflict (409: name taken, version published, limit reached, a file still being
     checked, or quarantined, failed or in review)
  {EXIT_TAMPER}  tamper detected (a checksum or the manifest lock does not match, or the registry
     found a file corrupt)
  {EXIT_SERVER}  server or network error (5xx, unreachable after retries)

configuration: REGISTRY_URL and REGISTRY_TOKEN, else the TOML file $REGISTRY_CONFIG
(default ~/.config/registry-client/config.toml) with keys url and token (regctl login writes it).
Downloads are cached in $REGISTRY_CACHE_DIR (default ~/.cache/registry-client).
REGISTRY_OFFLINE=1 is --offline; REGISTRY_PROGRESS=0/1 turns progress bars off/on."""

KINDS = ["pkl", "joblib", "pt", "onnx", "pmml", "safetensors", "rda", "h5", "savedmodel", "artifact", "other"]
EXTENSIONS = {
    ".pkl": "pkl", ".pickle": "pkl", ".joblib": "joblib", ".pt": "pt", ".pth": "pt", ".onnx": "onnx",
    ".pmml": "pmml", ".safetensors": "safetensors", ".rda": "rda", ".rdata": "rda", ".rds": "rda", ".h5": "h5",
    ".hdf5": "h5", ".keras": "h5",
}

log = logging.getLogger("registry_client")


class UsageError(Exception):
    """Bad command-line input found after parsing (exit 1)."""


class Parser(argparse.ArgumentParser):
    def error(self, message: str):  # argparse exits 2 on usage errors; 2 means "not found" here
        self.print_usage(sys.stderr)
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message}\n")


# --- helpers ----------------------------------------------------------------------------

def _json_argument(value: str | None, option: str) -> dict | None:
    """A JSON object given inline or as @file."""
    if value is None:
        return None
    text = value
    if value.startswith("@"):
        try:
            text = Path(value[1:]).read_text(encoding="utf-8")
        except OSError as exc:
            raise UsageError(f"{option}: cannot read {value[1:]}: {exc.strerror}") from None
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise UsageError(f"{option} is not valid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise UsageError(f"{option} must be a JSON object.")
    return data


def _files(specs: list[str], kind: str | None) -> list[tuple[str, Path]]:
    """KIND=PATH pairs, or PATH (kind from --kind or from the extension)."""
    files: list[tuple[str, Path]] = []
    bare = [s for s in specs if not (s.partition("=")[1] and s.partition("=")[0] in KINDS)]
    if kind is not None and len(bare) != 1:
        raise UsageError("--kind names the kind of exactly one FILE; use KIND=FILE pairs for several.")
    for spec in specs:
        prefix, sep, rest = spec.partition("=")
        if sep and prefix in KINDS:
            file_kind, path = prefix, Path(rest)
        else:
            path = Path(spec)
            file_kind = kind or ("artifact" if path.is_dir() else EXTENSIONS.get(path.suffix.lower()))
            if file_kind is None:
                raise UsageError(f"Cannot tell the kind of {spec}: use --kind KIND or KIND={spec} "
                                 f"(kinds: {', '.join(KINDS)}).")
        if file_kind not in KINDS:
            raise UsageError(f"Unknown kind {file_kind!r}; use one of {', '.join(KINDS)}.")
        if path.is_dir() and file_kind != "artifact":
            raise UsageError(f"{spec} is a folder: push a model artifact folder as artifact={path} (it is zipped).")
        if not path.is_file() and not path.is_dir():
            raise UsageError(f"No such file: {path}")
        if any(k == file_kind for k, _ in files):
            raise UsageError(f"Two files for the kind {file_kind}; a version has one file per kind.")
        files.append((file_kind, path))
    return files


def _version_of(model: Model, args) -> Version:
    if getattr(args, "alias", None):
        return model.alias(args.alias)
    return model.version(args.version)


def _print_table(rows: list[list[Any]], header: list[str]) -> None:
    cells = [[str(c) if c is not None else "" for c in row] for row in [header, *rows]]
    widths = [max(len(row[i]) for row in cells) for i in range(len(header))]
    for row in cells:
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip())


def _registry(args) -> Registry:
    return Registry(args.url, progress=args.progress, retries=max(args.retries, 0), offline=args.offline or None)


def _link_or_copy(source: Path, target: Path) -> None:
    """Put a verified cached file at `target`: a hard link when possible (no second copy)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    if target.exists() or target.is_symlink():
        if target.is_file() and os.path.samefile(source, target):
            return
        target.unlink()
    try:
        os.link(source, target)
    except OSError:
        temp = target.with_name(f".{target.name}.part")
        shutil.copyfile(source, temp)
        os.replace(temp, target)


# --- commands ---------------------------------------------------------------------------

def cmd_push(args) -> int:
    files = _files(args.files, args.kind)
    hyperparameters = _json_argument(args.hyperparameters, "--hyperparameters")
    config = _json_argument(args.config, "--config")
    metadata = _json_argument(args.metadata, "--metadata")
    unknown = sorted(set(args.optional + args.warn_on_tamper) - {k for k, _ in files})
    if unknown:
        raise UsageError(f"--optional/--warn-on-tamper name kinds not pushed: {', '.join(unknown)}.")
    registry = _registry(args)
    model = registry.context(args.context).model(args.model, create=args.create_model)
    version = model.create_version(
        hyperparameters=hyperparameters, config=config, metadata=metadata, framework=args.framework,
        framework_version=args.framework_version, tags=args.tag or None, description=args.description,
        name=args.name, records=args.record or None, provenance=False if args.no_provenance else None,
    )
    print(f"regctl: created version {version.number} of {model.context}/{model.name}", file=sys.stderr)
    try:
        for kind, path in files:
            uploaded = version.upload(kind, path, required=kind not in args.optional,
                                      fail_on_tamper=kind not in args.warn_on_tamper)
            print(f"regctl: uploaded {path} as {kind} ({uploaded.size} bytes, {uploaded.status})", file=sys.stderr)
        if args.publish or args.alias:
            version.publish(wait=True, timeout=args.timeout)
            print(f"regctl: published version {version.number}", file=sys.stderr)
        if args.alias:
            model.set_alias(args.alias, version)
            print(f"regctl: {args.alias} -> version {version.number}", file=sys.stderr)
    except RegistryError:
        print(f"regctl: version {version.number} was created but not completed (it stays a draft).", file=sys.stderr)
        raise
    version.refresh()
    formats = version.formats()
    if args.json:
        print(json.dumps({
            "context": model.context, "model": model.name, "model_id": model.id, "version": version.number,
            "status": version.status, "alias": args.alias,
            "files": [{"kind": f.kind, "filename": f.filename, "size": f.size, "status": f.status,
                       "sha256": f.sha256 or f.declared_sha256} for f in formats],
        }, indent=2))
    else:
        print(f"{model.context}/{model.name} v{version.number} {version.status}")
    return EXIT_OK


def cmd_pull(args) -> int:
    registry = _registry(args)
    if args.manifest:
        if args.context or args.model or args.version is not None or args.alias:
            raise UsageError("give either --manifest FILE or CONTEXT MODEL with --version/--alias, not both.")
        manifest = Manifest.load(args.manifest, registry, eager=False)
    else:
        if not (args.context and args.model):
            raise UsageError("pull needs CONTEXT MODEL (with --version N or --alias NAME), or --manifest FILE.")
        if (args.version is None) == (not args.alias):
            raise UsageError("pull needs exactly one of --version N and --alias NAME.")
        version = _version_of(registry.context(args.context).model(args.model), args)
        manifest = version.freeze()
    if args.kind:
        missing = [k for k in args.kind if k not in manifest.files]
        if missing:
            raise NotFound(f"No {', '.join(missing)} file in the manifest; it lists: "
                           f"{', '.join(manifest.files) or 'nothing'}.", status=404)
        names = args.kind
    else:
        names = [f.name for f in manifest.required_files]
        if args.all:
            names += [f.name for f in manifest.optional_files]
    if not names:
        raise NotFound("The manifest lists no files to pull.", status=404)
    output = Path(args.output)
    for name in names:
        cached = manifest.get_model(name)
        target = output / manifest.files[name].filename
        _link_or_copy(cached, target)
        print(target)
    return EXIT_OK


def cmd_freeze(args) -> int:
    registry = _registry(args)
    version = _version_of(registry.context(args.context).model(args.model), args)
    if args.output == "-":
        manifest = version.freeze()
        print(json.dumps(manifest.data, indent=2, ensure_ascii=False))
    else:
        manifest = version.freeze(args.output)
        print(args.output)
        print(f"regctl: froze {manifest.data['context']}/{manifest.data['model_name']} v{manifest.version} "
              f"({len(manifest.files)} file(s), lock {manifest.data['lock_checksum']})", file=sys.stderr)
    return EXIT_OK


def cmd_ls(args) -> int:
    registry = _registry(args)
    if not args.context:
        contexts = registry.contexts()
        if args.json:
            print(json.dumps([c.data for c in contexts], indent=2))
        else:
            _print_table([[c.slug, c.role, c.name] for c in contexts], ["CONTEXT", "ROLE", "NAME"])
        return EXIT_OK
    context = registry.context(args.context)
    if not args.model:
        models = list(context.models(search=args.search or "", tag=args.tag or None))
        if args.json:
            print(json.dumps([m.data for m in models], indent=2))
        else:
            _print_table([[m.name, m.latest_version, ",".join(f"{k}=v{v}" for k, v in m.aliases.items()),
                           ",".join(m.tags), m.id] for m in models], ["MODEL", "LATEST", "ALIASES", "TAGS", "ID"])
        return EXIT_OK
    model = context.model(args.model)
    if not args.version:
        versions = list(model.versions())
        if args.json:
            print(json.dumps([v.data for v in versions], indent=2))
        else:
            _print_table([[v.number, v.status, v.model_type or v.framework, ",".join(v.aliases), ",".join(v.tags),
                           ",".join(f.kind for f in v.format_summaries),
                           v.created_at.strftime("%Y-%m-%dT%H:%M:%S") if v.created_at else ""]
                          for v in versions], ["VERSION", "STATUS", "TYPE", "ALIASES", "TAGS", "FILES", "CREATED"])
        return EXIT_OK
    version = model.version(args.version)
    formats = version.formats()
    if args.json:
        print(json.dumps({"version": version.data, "formats": [f.data for f in formats]}, indent=2))
        return EXIT_OK
    _print_table([[f.kind, f.status, f.size, "yes" if f.required else "no", "fail" if f.fail_on_tamper else "warn",
                   f.sha256 or "-", f.filename]
                  for f in formats], ["KIND", "STATUS", "SIZE", "REQUIRED", "ON TAMPER", "SHA256", "FILENAME"])
    for record in version.records:
        print(f"record  {record.name}  {record.uri}")
    return EXIT_OK


def cmd_attachment(args) -> int:
    """ls, add, get or rm an attachment of a model (a file of the model itself, not of a version)."""
    model = _registry(args).context(args.context).model(args.model)
    if args.action == "ls":
        attachments = model.attachments()
        if args.json:
            print(json.dumps([a.data for a in attachments], indent=2))
        else:
            _print_table([[a.name, a.size, a.sha256, a.content_type, a.uploaded_by or "",
                           a.uploaded_at.strftime("%Y-%m-%dT%H:%M:%S") if a.uploaded_at else ""]
                          for a in attachments], ["NAME", "SIZE", "SHA256", "TYPE", "BY", "UPLOADED"])
        return EXIT_OK
    if args.action == "add":
        attachment = model.upload_attachment(args.file, args.name, overwrite=args.overwrite,
                                             description=args.description)
        print(json.dumps(attachment.data, indent=2) if args.json else f"{attachment.name}  {attachment.sha256}")
        return EXIT_OK
    if args.action == "get":
        print(model.download_attachment(args.name, args.output))
        return EXIT_OK
    model.delete_attachment(args.name)
    print(f"regctl: deleted the attachment {args.name} of {model.name}", file=sys.stderr)
    return EXIT_OK


def cmd_login(args) -> int:
    from registry_client.login import login

    if args.token_stdin:
        token = sys.stdin.readline().strip()
    elif not sys.stdin.isatty():
        raise UsageError("No terminal to ask for the token on: pipe it in with --token-stdin.")
    else:
        token = None  # prompted for, without echo
    result = login(args.login_url or args.url, token, context=args.context)
    contexts = ", ".join(result.contexts) or "none yet"
    print(f"regctl: logged in to {result.url} (contexts: {contexts}); the token is saved in {result.path} "
          "(mode 600)", file=sys.stderr)
    print(result.path)
    return EXIT_OK
def _size(count: int) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if count < 1024 or unit == "GiB":
            return f"{count} {unit}" if unit == "B" else f"{count:.1f} {unit}"
        count /= 1024
    return str(count)


def cmd_import_mlflow(args) -> int:
    from registry_client.mlflow_import import import_mlflow

    registry = _registry(args)
    summary = import_mlflow(registry, args.tracking_uri, args.context, models=args.model or None,
                            dry_run=args.dry_run, timeout=args.timeout)
    if args.json:
        print(json.dumps(summary.to_dict(), indent=2))
    else:
        print(f"{'Dry run: nothing was written. ' if summary.dry_run else ''}"
              f"MLflow {summary.tracking_uri} -> context {summary.context}")
        print()
        _print_table([[m.name, m.action, m.model_id] for m in summary.models], ["MODEL", "ACTION", "ID"])
        print()
        _print_table([[v.model, v.mlflow_version, v.number or "-", v.action, v.status or "-", ",".join(v.files) or "-",
                       _size(v.bytes) if v.bytes else "-"] for v in summary.versions],
                     ["MODEL", "MLFLOW", "VERSION", "ACTION", "STATUS", "FILES", "BYTES"])
        if summary.aliases:
            print()
            _print_table([[a.model, a.alias, a.mlflow_version, a.number or "-", a.action] for a in summary.aliases],
                         ["MODEL", "ALIAS", "MLFLOW", "VERSION", "ACTION"])
        skipped = summary.skipped
        if skipped:
            print()
            _print_table([[what, why] for what, why in skipped], ["SKIPPED", "REASON"])
        print()
        versions = summary.versions
        print(f"models: {len(summary.models)}, versions: {len(versions)} "
              f"({sum(v.status == 'published' for v in versions)} published, "
              f"{sum(v.status == 'draft' for v in versions)} drafts), files: {summary.files}, "
              f"bytes: {_size(summary.bytes)}, skipped: {len(skipped)}")
    if summary.clashes:
        print(f"regctl: {len(summary.clashes)} name clash(es): those models were not imported, nothing was merged.",
              file=sys.stderr)
    if summary.errors:
        print(f"regctl: {len(summary.errors)} failure(s); run the import again to resume.", file=sys.stderr)
        return EXIT_SERVER
    return EXIT_CONFLICT if summary.clashes else EXIT_OK


# --- parser -----------------------------------------------------------------------------

def build_parser() -> Parser:
    parser = Parser(prog="regctl", description="Push, pull, freeze and list models of a model registry; "
                                               "import them from MLflow.",
                    epilog=EXIT_CODES, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--url", help="registry URL (default: $REGISTRY_URL or the config file)")
    parser.add_argument("--progress", dest="progress", action="store_true", default=None,
                        help="show progress bars (default: $REGISTRY_PROGRESS=1/0, else when stderr is a terminal)")
    parser.add_argument("--no-progress", dest="progress", action="store_false", help="no progress bars")
    parser.add_argument("--offline", action="store_true", default=None,
                        help="never contact the registry: pull --manifest serves files verified in the cache "
                             "(default: $REGISTRY_OFFLINE)")
    parser.add_argument("--retries", type=int, default=5, metavar="N",
                        help="retries of a transient failure (connection error, timeout, 502/503/504; default 5)")
    parser.add_argument("-v", "--verbose", action="store_true", help="log each request and retry")
    parser.add_argument("--version", action="version", version=f"regctl {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, parser_class=Parser)

    def which(sub):
        group = sub.add_mutually_exclusive_group()
        group.add_argument("--version", type=int, help="version number")
        group.add_argument("--alias", help="alias name, e.g. production")

    push = commands.add_parser("push", help="create a version, upload files, optionally publish",
                               description="Create a new version of MODEL and upload FILEs to it.",
                               epilog=EXIT_CODES, formatter_class=argparse.RawDescriptionHelpFormatter)
    push.add_argument("context")
    push.add_argument("model", help="model name or ID")
    push.add_argument("files", nargs="+", metavar="FILE",
                      help="PATH (kind from --kind or the extension; a folder is a model artifact) or KIND=PATH")
    push.add_argument("--kind", choices=KINDS, help="the kind of a single FILE")
    push.add_argument("--create-model", action="store_true", help="create the model if it does not exist")
    push.add_argument("--framework")
    push.add_argument("--framework-version")
    push.add_argument("--hyperparameters", metavar="JSON|@FILE")
    push.add_argument("--config", metavar="JSON|@FILE")
    push.add_argument("--metadata", metavar="JSON|@FILE")
    push.add_argument("--no-provenance", action="store_true",
                      help="do not fill metadata.provenance from the git checkout regctl runs in "
                           "(also: REGISTRY_PROVENANCE=0)")
    push.add_argument("--tag", action="append", default=[], help="version tag (repeatable)")
    push.add_argument("--description")
    push.add_argument("--name", help="version name")
    push.add_argument("--record", action="append", default=[], metavar="ID", help="training record ID (repeatable)")
    push.add_argument("--optional", action="append", default=[], metavar="KIND",
                      help="list this kind under optional_files of the manifest (fetched lazily)")
    push.add_argument("--warn-on-tamper", action="append", default=[], metavar="KIND",
                      help="a checksum mismatch of this kind only warns consumers (fail_on_tamper false)")
    push.add_argument("--publish", action="store_true", help="publish once the files are hashed and inspected")
    push.add_argument("--alias", help="then point this alias at the version (implies --publish)")
    push.add_argument("--timeout", type=float, default=600, help="seconds to wait for the files to be ready")
    push.add_argument("--json", action="store_true", help="print the result as JSON")
    push.set_defaults(handler=cmd_push)

    pull = commands.add_parser("pull", help="download a version's files, verified through its frozen manifest",
                               description="Download the files of a version (required ones unless --kind/--all), "
                                           "verified against its frozen manifest, into -o DIR.",
                               epilog=EXIT_CODES, formatter_class=argparse.RawDescriptionHelpFormatter)
    pull.add_argument("context", nargs="?")
    pull.add_argument("model", nargs="?", help="model name or ID")
    which(pull)
    pull.add_argument("--manifest", metavar="FILE", help="pull through a frozen manifest saved by `regctl freeze`")
    pull.add_argument("--kind", action="append", default=[], help="only this file (repeatable)")
    pull.add_argument("--all", action="store_true", help="optional files too")
    pull.add_argument("-o", "--output", default=".", metavar="DIR", help="folder for the files (default: .)")
    pull.set_defaults(handler=cmd_pull)

    freeze = commands.add_parser("freeze", help="write a version's frozen manifest",
                                 epilog=EXIT_CODES, formatter_class=argparse.RawDescriptionHelpFormatter)
    freeze.add_argument("context")
    freeze.add_argument("model", help="model name or ID")
    which(freeze)
    freeze.add_argument("-o", "--output", default="-", metavar="FILE", help="manifest file (default: stdout)")
    freeze.set_defaults(handler=cmd_freeze)

    login = commands.add_parser("login", help="check a token against the registry and save it (mode 600)",
                                description="Ask for an API token (without echo; or read it from stdin with "
                                            "--token-stdin), check it against the registry at --url (default: "
                                            "$REGISTRY_URL or the config file's), and save both in the config "
                                            "file with mode 600. A token the registry refuses is not saved.",
                                epilog=EXIT_CODES, formatter_class=argparse.RawDescriptionHelpFormatter)
    login.add_argument("--url", dest="login_url", metavar="URL", help="the registry (same as regctl --url URL login)")
    login.add_argument("--token-stdin", action="store_true", help="read the token from the first line of stdin")
    login.add_argument("--context", help="also save this as the default context (checked too)")
    login.set_defaults(handler=cmd_login)

    ls = commands.add_parser("ls", help="list contexts, models, versions or a version's formats",
                             epilog=EXIT_CODES, formatter_class=argparse.RawDescriptionHelpFormatter)
    ls.add_argument("context", nargs="?")
    ls.add_argument("model", nargs="?", help="model name or ID")
    ls.add_argument("version", nargs="?", help="version number or alias")
    ls.add_argument("--search", help="with CONTEXT: words in name, description or tags")
    ls.add_argument("--tag", action="append", default=[], help="with CONTEXT: only models with this tag")
    ls.add_argument("--json", action="store_true", help="print JSON")
    ls.set_defaults(handler=cmd_ls)

    attachment = commands.add_parser(
        "attachment", help="list, add, download or delete a model's attachments (files of the model itself)",
        description="Attachments are files of the model itself, not of a version: a model card, a monitoring "
                    "report, a drift plot, benchmark results. Downloads are checked against their SHA-256.",
        epilog=EXIT_CODES, formatter_class=argparse.RawDescriptionHelpFormatter)
    actions = attachment.add_subparsers(dest="action", required=True, parser_class=Parser)
    for action, help_text in (("ls", "list the attachments"), ("add", "attach FILE (as --name, default its name)"),
                              ("get", "download NAME, verified, into -o DIR or FILE"),
                              ("rm", "delete NAME and its stored file")):
        sub = actions.add_parser(action, help=help_text, epilog=EXIT_CODES,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
        sub.add_argument("context")
        sub.add_argument("model", help="model name or ID")
        if action == "add":
            sub.add_argument("file", type=Path)
            sub.add_argument("--name", help="the attachment's name (default: the file's name)")
            sub.add_argument("--description")
            sub.add_argument("--overwrite", action="store_true", help="replace an attachment of the same name")
        elif action in ("get", "rm"):
            sub.add_argument("name")
        if action == "get":
            sub.add_argument("-o", "--output", default=".", metavar="DIR|FILE", help="where to put it (default: .)")
        if action in ("ls", "add"):
            sub.add_argument("--json", action="store_true", help="print JSON")
        sub.set_defaults(handler=cmd_attachment)

    mlflow = commands.add_parser(
        "import-mlflow", help="copy registered models from an MLflow tracking server",
        description="Copy registered models (all, or those named by --model) from a running MLflow tracking "
                    "server into CONTEXT: versions in order with params, metrics and files, aliases and the "
                    "stages Production/Staging as aliases. Safe to run again: only what is new or changed is "
                    "copied, and an interrupted import resumes. MLflow credentials: MLFLOW_TRACKING_TOKEN, or "
                    "MLFLOW_TRACKING_USERNAME and MLFLOW_TRACKING_PASSWORD.",
        epilog=EXIT_CODES, formatter_class=argparse.RawDescriptionHelpFormatter)
    mlflow.add_argument("--tracking-uri", required=True, metavar="URI", help="the MLflow server, e.g. http://mlflow:5000")
    mlflow.add_argument("--context", required=True, metavar="CTX", help="the context to import into")
    mlflow.add_argument("--model", nargs="+", action="extend", default=[], metavar="NAME",
                        help="only these registered models (repeatable; default: all)")
    mlflow.add_argument("--dry-run", action="store_true", help="say what would be done; write nothing")
    mlflow.add_argument("--timeout", type=float, default=600, help="seconds to wait for a version's files to be ready")
    mlflow.add_argument("--json", action="store_true", help="print the summary as JSON")
    mlflow.set_defaults(handler=cmd_import_mlflow)
    return parser


def _exit_code(exc: BaseException) -> int:
    if isinstance(exc, TamperError):
        return EXIT_TAMPER
    if isinstance(exc, NotCached):
        return EXIT_ACCESS
    if isinstance(exc, OfflineError):
        return EXIT_USAGE
    if isinstance(exc, (ConfigError, BadRequest, PayloadTooLarge, UsageError, FileNotFoundError, ValueError)):
        return EXIT_USAGE
    if isinstance(exc, (NotFound, Forbidden, Unauthorized)):
        return EXIT_ACCESS
    if isinstance(exc, Conflict):
        return EXIT_CONFLICT
    return EXIT_SERVER


def _redact(text: str) -> str:
    """Belt and braces: whatever produced the text, the token never reaches the terminal."""
    token = os.environ.get("REGISTRY_TOKEN")
    return text.replace(token, "***") if token and len(token) >= 8 else text


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, stream=sys.stderr,
                        format="regctl: %(message)s")
    if not args.verbose:
        logging.getLogger("httpx").setLevel(logging.WARNING)

    def show_warning(message, category, filename, lineno, file=None, line=None):
        print(_redact(f"regctl: warning: {message}"), file=sys.stderr)

    warnings.showwarning = show_warning
    try:
        return args.handler(args)
    except KeyboardInterrupt:
        print("regctl: interrupted", file=sys.stderr)
        return 130
    except (RegistryError, UsageError, FileNotFoundError, ValueError) as exc:
        print(_redact(f"regctl: error: {exc}"), file=sys.stderr)
        return _exit_code(exc)
    except OSError as exc:
        print(_redact(f"regctl: error: {exc}"), file=sys.stderr)
        return EXIT_USAGE


if __name__ == "__main__":
    sys.exit(main())
