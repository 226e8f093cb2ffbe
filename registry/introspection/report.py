"""The one result shape every introspection module returns."""

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
    signature: dict | None = None   # {"inputs": [{name,dtype,shape[,profile]}], "outputs": [...]}; dtype in float16/32/64,int8..64,uint8..,string,bool,...; shape list of ints, -1 = any
    checks: list[dict] = field(default_factory=list)  # artifacts: {key, category, description, passed, message}

    def as_dict(self) -> dict:
        return asdict(self)
