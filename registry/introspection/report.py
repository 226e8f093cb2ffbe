"""The one result shape every introspection module returns."""

import re
from dataclasses import asdict, dataclass, field

READY, REVIEW, QUARANTINED, FAILED = "ready", "review", "quarantined", "failed"


@dataclass
class Report:
    status: str                 # READY, REVIEW, QUARANTINED or FAILED: the format status this leads to
    # REVIEW: details["unvetted"] lists the third-party imports a person must approve, each
    # {"import": "module.qualname", "module", "name", "called": bool}.
    message: str                # one line a person can read
    detected_kind: str | None = None   # from magic bytes / content
    details: dict = field(default_factory=dict)   # kind-specific, JSON-serialisable
    signature: dict | None = None   # registry/signatures.py canonical form: {"inputs": [{name,dtype,shape[,profile]}], "outputs": [...]} or {"signatures": {name: {...}}}; dtype in float16/32/64,int8..64,uint8..,string,bool,...; shape list of ints, -1 = any
    checks: list[dict] = field(default_factory=list)  # artifacts: {key, category, description, passed, message}

    def as_dict(self) -> dict:
        """The report as it is stored: JSON-shaped, every string in it storable (see `storable`)."""
        return storable(asdict(self))


def counted(count: int, noun: str, plural: str = "") -> str:
    """'1 input', '2 inputs': a count and its noun, for the one-line messages."""
    return f"{count} {noun if count == 1 else plural or noun + 's'}"


# PostgreSQL refuses NUL in text and in jsonb, and a lone surrogate cannot be encoded at all;
# a file can put either into any string an inspector reads from it (a name, a path, metadata).
UNSTORABLE = re.compile("[\x00\ud800-\udfff]")


def _escape(match: re.Match) -> str:
    return match.group().encode("unicode_escape").decode("ascii")


def storable(value):
    """`value` with every string in it, dict keys included, storable in a text or jsonb column:
    NUL becomes the four characters \\x00 and a lone surrogate its \\udXXX escape, as repr() shows them.
    Lists, tuples and dicts are copied; other values are returned as they are."""
    if isinstance(value, str):
        return UNSTORABLE.sub(_escape, value)
    if isinstance(value, dict):
        return {storable(key): storable(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [storable(item) for item in value]
    return value


# Which status wins when two verdicts on one file (or on an archive's members) combine.
SEVERITY = {READY: 0, REVIEW: 1, FAILED: 2, QUARANTINED: 3}


def merge_unvetted(lists) -> list[dict]:
    """details["unvetted"] lists as one: an entry per import, first seen first, "called" if called anywhere."""
    merged: dict[str, dict] = {}
    for items in lists:
        for item in items or ():
            entry = merged.setdefault(item["import"], {**item, "called": False})
            entry["called"] = entry["called"] or bool(item.get("called"))
    return list(merged.values())


def combine(report: Report, other: Report, *, key: str, status: str | None = None, message: str | None = None
            ) -> Report:
    """Two verdicts on one file as one Report: the worst status wins and its message comes first.

    The other message follows when it is not ready (or when both are ready); `other` is kept
    whole in details[key]; a review lists the union of both unvetted lists. `status` and
    `message` override how `other` counts, when a caller judges it more severely.
    """
    status, message = status or other.status, message or other.message
    verdicts = [(report.status, report.message), (status, message)]
    if SEVERITY[status] > SEVERITY[report.status]:
        verdicts.reverse()
    (worst, first), (second_status, second) = verdicts
    if second_status != READY:
        first = f"{first}; also {second}"
    elif worst == READY:
        first = f"{first}; {second}"
    details = {**report.details, key: {"status": other.status, "message": other.message, "details": other.details}}
    details.pop("unvetted", None)
    if worst == REVIEW:
        details["unvetted"] = merge_unvetted([report.details.get("unvetted"), other.details.get("unvetted")])
    return Report(worst, first, detected_kind=report.detected_kind or other.detected_kind, details=details,
                  signature=report.signature, checks=report.checks)
