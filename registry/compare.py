"""Two versions side by side: what changed, and whether a signature change breaks callers.

Pure functions over plain data. `snapshot` turns a version (as `selectors.version_list`
shows it) and its latest metrics into a dict; everything else works
on such dicts, so the rules are testable without a database and shared by any page or API
that compares versions.

Signature rules (SPEC §3), read from the caller's side, going from version `a` to `b`:

- inputs: a removed, added (callers do not send it yet) or retyped input is breaking, and so
  is a changed shape, except relaxing a dimension to -1 (it still accepts what it did);
- outputs: a removed or retyped output is breaking, and so is a changed shape, except fixing
  a dimension that was -1 (consumers already handled any size); an added output is compatible;
- a changed profile (numerical/text/image) is informative only, never breaking;
- a signature appearing where there was none breaks nothing; one disappearing is breaking,
  since callers can no longer check what the model accepts.

A contract may hold several named signatures (registry/signatures.py); the rules apply per
signature, matched by name. A named signature removed while others stay is breaking (its
callers have nothing to call); one added is compatible.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from registry import signatures as named_signatures

SIGNATURE_PARTS = ("inputs", "outputs")
FIELD_LABELS = {
    "name": "Name",
    "status": "Status",
    "model_type": "Model type",
    "tags": "Tags",
    "records": "Training records",
    "signature_source": "Signature source",
    "description": "Description",
}


class _Missing:
    """Marks a key present on one side only (distinct from a JSON null)."""

    def __repr__(self) -> str:
        return "MISSING"

    def __bool__(self) -> bool:
        return False


MISSING: Any = _Missing()


def as_text(value: Any) -> str:
    """How a JSON value is shown in a comparison: compact JSON, '' when absent."""
    if value is MISSING:
        return ""
    return json.dumps(value, sort_keys=True, ensure_ascii=False)


@dataclass(frozen=True)
class Difference:
    """One row of a comparison: the value in `a` (`old`) and in `b` (`new`)."""

    key: str
    old: Any
    new: Any
    label: str = ""
    old_note: str = ""
    new_note: str = ""
    delta: float | None = None

    @property
    def status(self) -> str:
        if self.old is MISSING:
            return "added"
        if self.new is MISSING:
            return "removed"
        return "same" if _same(self.old, self.new) else "changed"

    @property
    def changed(self) -> bool:
        return self.status != "same"

    @property
    def old_text(self) -> str:
        return as_text(self.old)

    @property
    def new_text(self) -> str:
        return as_text(self.new)


@dataclass(frozen=True)
class SignatureChange:
    part: str  # "inputs", "outputs", or "signature" for a whole signature or the whole contract
    name: str  # the field's name; for part "signature", the signature's name ("" for the whole contract)
    change: str  # added, removed, dtype, shape, profile
    breaking: bool
    message: str
    old: Any = None
    new: Any = None
    signature: str = named_signatures.DEFAULT_NAME  # which named signature it is in


def _same(old: Any, new: Any) -> bool:
    # Compared as shown: 1, 1.0 and true are different settings even though Python equates them.
    return as_text(old) == as_text(new)


def flatten(value: Any, prefix: str = "") -> dict[str, Any]:
    """Nested objects to dotted keys ({"opt": {"lr": 1}} -> {"opt.lr": 1}); lists stay whole."""
    if not isinstance(value, dict) or (prefix and not value):
        return {prefix: value}
    flat: dict[str, Any] = {}
    for key, item in value.items():
        flat.update(flatten(item, f"{prefix}.{key}" if prefix else str(key)))
    return flat


def diff_mapping(old: dict | None, new: dict | None) -> list[Difference]:
    """Every leaf key of two JSON objects, sorted, with its value on each side."""
    old_flat, new_flat = flatten(old or {}), flatten(new or {})
    return [
        Difference(key, old_flat.get(key, MISSING), new_flat.get(key, MISSING))
        for key in sorted(old_flat.keys() | new_flat.keys())
    ]


def diff_metrics(old: dict, new: dict) -> list[Difference]:
    """Latest value per metric key ({key: {"value", "step"}}), with b - a for numbers."""
    rows = []
    for key in sorted(old.keys() | new.keys()):
        a, b = old.get(key), new.get(key)
        old_value = a["value"] if a else MISSING
        new_value = b["value"] if b else MISSING
        delta = None
        if _is_number(old_value) and _is_number(new_value):
            delta = new_value - old_value
        rows.append(Difference(
            key, old_value, new_value, old_note=_step_note(a), new_note=_step_note(b), delta=delta,
        ))
    return rows


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _step_note(metric: dict | None) -> str:
    return f"step {metric['step']}" if metric and metric.get("step") is not None else ""


def _shape_text(shape) -> str:
    return json.dumps(list(shape or []))


def _shape_compatible(part: str, old: list, new: list) -> bool:
    """Same rank, and each changed dimension widens an input or narrows an output."""
    if len(old) != len(new):
        return False
    for old_dim, new_dim in zip(old, new, strict=True):
        if old_dim == new_dim:
            continue
        if part == "inputs" and new_dim == -1:
            continue
        if part == "outputs" and old_dim == -1:
            continue
        return False
    return True


def signature_diff(old: dict | None, new: dict | None) -> list[SignatureChange]:
    """Changes from signature `old` to `new` (stored forms, named or not), each flagged
    breaking or compatible (see module doc)."""
    old_named, new_named = named_signatures.named(old), named_signatures.named(new)
    if not old_named and not new_named:
        return []
    if not old_named:
        return [SignatureChange("signature", "", "added", False,
                                "A signature was added; there was none before, so nothing can break.")]
    if not new_named:
        return [SignatureChange("signature", "", "removed", True,
                                "The signature was removed: callers can no longer check what the model accepts.")]
    # Messages name the signature once a contract has more than the default one.
    only_default = set(old_named) | set(new_named) == {named_signatures.DEFAULT_NAME}
    changes: list[SignatureChange] = []
    for name in list(old_named) + [name for name in new_named if name not in old_named]:
        before, after = old_named.get(name), new_named.get(name)
        if after is None:
            changes.append(SignatureChange("signature", name, "removed", True,
                                           f"Signature '{name}' was removed: its callers have nothing to call.",
                                           signature=name))
        elif before is None:
            changes.append(SignatureChange("signature", name, "added", False,
                                           f"Signature '{name}' was added; existing callers do not use it.",
                                           signature=name))
        else:
            changes.extend(_fields_diff(before, after, signature=name, prefix="" if only_default else f"{name}: "))
    return changes


def _fields_diff(old: dict, new: dict, *, signature: str, prefix: str) -> list[SignatureChange]:
    """Changes between two signatures of the same name, field by field."""
    changes: list[SignatureChange] = []

    def change(part, name, kind, breaking, message, old=None, new=None):
        changes.append(SignatureChange(part, name, kind, breaking, prefix + message, old=old, new=new,
                                       signature=signature))

    for part in SIGNATURE_PARTS:
        noun = "input" if part == "inputs" else "output"
        old_fields = {item["name"]: item for item in old.get(part, [])}
        new_fields = {item["name"]: item for item in new.get(part, [])}
        names = list(old_fields) + [name for name in new_fields if name not in old_fields]
        for name in names:
            before, after = old_fields.get(name), new_fields.get(name)
            if after is None:
                change(part, name, "removed", True, f"{noun.capitalize()} '{name}' was removed.", old=before)
                continue
            if before is None:
                if part == "inputs":
                    message = f"New input '{name}': callers do not send it yet."
                else:
                    message = f"New output '{name}'; existing callers can ignore it."
                change(part, name, "added", part == "inputs", message, new=after)
                continue
            if before.get("dtype") != after.get("dtype"):
                change(part, name, "dtype", True,
                       f"{noun.capitalize()} '{name}' changed type from {before.get('dtype')} to {after.get('dtype')}.",
                       old=before.get("dtype"), new=after.get("dtype"))
            old_shape, new_shape = list(before.get("shape") or []), list(after.get("shape") or [])
            if old_shape != new_shape:
                compatible = _shape_compatible(part, old_shape, new_shape)
                how = "; it accepts what it did before" if part == "inputs" else "; callers already handle it"
                change(part, name, "shape", not compatible,
                       f"{noun.capitalize()} '{name}' changed shape from {_shape_text(old_shape)} to "
                       f"{_shape_text(new_shape)}{how if compatible else ''}.",
                       old=old_shape, new=new_shape)
            if before.get("profile") != after.get("profile"):
                change(part, name, "profile", False,
                       f"{noun.capitalize()} '{name}' profile changed from {before.get('profile') or 'none'} "
                       f"to {after.get('profile') or 'none'}.",
                       old=before.get("profile"), new=after.get("profile"))
    return changes


def snapshot(version, latest_metrics=()) -> dict[str, Any]:
    """The comparable content of a version as selectors.version_list() / version_detail() show it."""
    return {
        "number": version.number,
        "fields": {
            "name": version.name,
            "status": version.status,
            "model_type": version.model_type,
            "tags": ", ".join(sorted(version.tag_names, key=str.casefold)),
            "records": ", ".join(sorted((record["name"] for record in version.record_rows), key=str.casefold)),
            "signature_source": version.signature_source,
            "description": version.description,
        },
        "hyperparameters": version.hyperparameters or {},
        "config": version.config or {},
        "metadata": version.metadata or {},
        "metrics": {metric.key: {"value": metric.value, "step": metric.step} for metric in latest_metrics},
        "signature": version.signature or {},
    }


@dataclass
class Comparison:
    a: dict
    b: dict
    fields: list[Difference]
    hyperparameters: list[Difference]
    config: list[Difference]
    metadata: list[Difference]
    metrics: list[Difference]
    signature_changes: list[SignatureChange]
    changed: dict[str, int] = field(default_factory=dict)

    @property
    def breaking(self) -> list[SignatureChange]:
        return [change for change in self.signature_changes if change.breaking]

    @property
    def signatures_named(self) -> bool:
        """True when either side holds more than the default signature: both then name theirs."""
        names = set(named_signatures.named(self.a.get("signature"))) | set(named_signatures.named(self.b.get("signature")))
        return bool(names - {named_signatures.DEFAULT_NAME})

    @property
    def identical(self) -> bool:
        return not any(self.changed.values())


def compare_versions(a: dict, b: dict) -> Comparison:
    """Compare two snapshots (from `snapshot`); `a` is the base, `b` the one compared to it."""
    fields = [
        Difference(key, a["fields"].get(key, ""), b["fields"].get(key, ""), label=label)
        for key, label in FIELD_LABELS.items()
    ]
    comparison = Comparison(
        a=a,
        b=b,
        fields=fields,
        hyperparameters=diff_mapping(a.get("hyperparameters"), b.get("hyperparameters")),
        config=diff_mapping(a.get("config"), b.get("config")),
        metadata=diff_mapping(a.get("metadata"), b.get("metadata")),
        metrics=diff_metrics(a.get("metrics", {}), b.get("metrics", {})),
        signature_changes=signature_diff(a.get("signature"), b.get("signature")),
    )
    comparison.changed = {
        "fields": sum(row.changed for row in comparison.fields),
        "hyperparameters": sum(row.changed for row in comparison.hyperparameters),
        "config": sum(row.changed for row in comparison.config),
        "metadata": sum(row.changed for row in comparison.metadata),
        "metrics": sum(row.changed for row in comparison.metrics),
        "signature": len(comparison.signature_changes),
    }
    return comparison
