"""The one shape every corpus entry has."""

from __future__ import annotations

from dataclasses import dataclass

QUARANTINED = "quarantined"  # a real attack: the registry must quarantine it
NOT_READY = "not_ready"  # quarantined, review or failed are all acceptable


@dataclass(frozen=True)
class Sample:
    name: str  # unique, stable: tests are parametrized by it
    data: bytes
    kind: str  # the format kind the file is declared as (pkl, joblib, pt, artifact, other, h5, ...)
    category: str = ""  # malicious: runner, file, network, loader, third-party, obfuscation, bypass, ...
    expect: str = NOT_READY  # malicious only: QUARANTINED or NOT_READY
    note: str = ""  # what the file does, for a person reading a failure

    def pair(self) -> tuple[str, bytes]:
        return self.name, self.data
