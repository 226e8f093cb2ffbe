"""Named signatures (SPEC §3): a contract holds one or more signatures (`predict`,
`tokenize`...), each with its inputs and outputs.

A version's `signature` is stored (and served) in one canonical form of two shapes:

- one signature named `predict` (DEFAULT_NAME): `{"inputs": [...], "outputs": [...]}`, the
  shape every version had before signatures were named, so readers of it keep working;
- anything else: `{"signatures": {"predict": {"inputs", "outputs"}, "tokenize": {...}}}`.

Writers may send either shape, or both at once (top-level inputs/outputs are the `predict`
signature, `signatures` the others). `named()` gives every reader the same view:
{name: {"inputs", "outputs"}}.
"""

from __future__ import annotations

import re
from typing import Any

DEFAULT_NAME = "predict"
NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_.-]{0,63}$")
MAX_SIGNATURES = 32
PARTS = ("inputs", "outputs")


def named(signature: Any) -> dict[str, dict]:
    """{name: {"inputs": [...], "outputs": [...]}} of a stored (canonical) signature; {} for none."""
    if not isinstance(signature, dict) or not signature:
        return {}
    result: dict[str, dict] = {}
    if any(part in signature for part in PARTS):
        result[DEFAULT_NAME] = {part: list(signature.get(part) or []) for part in PARTS}
    others = signature.get("signatures")
    if isinstance(others, dict):
        for name, value in others.items():
            if isinstance(value, dict):
                result[str(name)] = {part: list(value.get(part) or []) for part in PARTS}
    return {name: value for name, value in result.items() if value["inputs"] or value["outputs"]}


def canonical(signatures: dict[str, dict]) -> dict:
    """The stored form of {name: {"inputs", "outputs"}} (see the module docstring)."""
    kept = {name: value for name, value in signatures.items() if value.get("inputs") or value.get("outputs")}
    if not kept:
        return {}
    if list(kept) == [DEFAULT_NAME]:
        return {part: kept[DEFAULT_NAME].get(part, []) for part in PARTS}
    return {"signatures": {name: {part: value.get(part, []) for part in PARTS} for name, value in kept.items()}}


def describe(signatures: dict[str, dict]) -> str:
    """'predict: 2 inputs, 1 output; tokenize: 1 input, 1 output' (one signature: no name)."""
    def counts(value: dict) -> str:
        inputs, outputs = len(value.get("inputs", [])), len(value.get("outputs", []))
        return f"{inputs} input{'s' if inputs != 1 else ''}, {outputs} output{'s' if outputs != 1 else ''}"

    if list(signatures) == [DEFAULT_NAME]:
        return counts(signatures[DEFAULT_NAME])
    return "; ".join(f"{name}: {counts(value)}" for name, value in signatures.items())
