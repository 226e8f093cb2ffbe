"""One entry point for the workers: pick the inspector for a format kind, confirm the kind
from the content, and return a Report. Nothing here executes or imports uploaded bytes.

A pickle is found wherever it hides: every file is also read the way pickle.load (and
joblib.load, torch.load where they differ) would read it from byte 0, whatever its kind says
and even when its content contradicts that kind (pickles.scan_as_loaded). pkl, joblib and pt
files are read so by the pickle scanner already, unless their content contradicts their kind.
The two verdicts combine, the worst winning (quarantined > failed > review > ready); details
keep both, the second under details["read_as_pickle"], and a review lists the union of both
unvetted lists. A file of kind "other" that such a loader accepts is a pickle: it fails with
a request to upload it as kind pkl, joblib or pt (where the pickle scanner reads all of it), or
is quarantined when dangerous; only a pickle that imports nothing at all (constants, which
random data sometimes is: "N." is a pickle of None) is plain data to every loader, and passes.
"""

from __future__ import annotations

from typing import IO

from registry.introspection import artifact, headers, onnx_model, pickles, pmml, safetensors_file
from registry.introspection.report import FAILED, QUARANTINED, Report, combine

SCANNED_AS_PICKLES = {"pkl", "joblib", "pt"}


def _inspect(kind: str, handle: IO[bytes], size: int) -> Report:
    if kind == "pkl":
        return pickles.scan_pickle_stream(handle)
    if kind == "joblib":
        return pickles.scan_joblib(handle)
    if kind == "pt":
        return pickles.scan_torch(handle)
    if kind == "onnx":
        return onnx_model.inspect_onnx(handle)
    if kind == "pmml":
        return pmml.inspect_pmml(handle)
    if kind == "safetensors":
        return safetensors_file.inspect_safetensors(handle, size)
    if kind == "artifact":
        return artifact.inspect_artifact(handle, scan_serialized=pickles.scan_serialized)
    if kind == "savedmodel":
        return artifact.inspect_savedmodel(handle, scan_serialized=pickles.scan_serialized)
    if kind == "h5":
        return headers.inspect_h5(handle)
    if kind == "rda":
        return headers.inspect_rda(handle)
    return headers.inspect_other(handle, scan_serialized=pickles.scan_serialized)


def introspect(kind: str, handle: IO[bytes], *, size: int) -> Report:
    """Report on a stored file declared as `kind`; content that contradicts the kind fails."""
    handle.seek(0)
    detected = headers.detect_kind(handle)
    contradiction = headers.kind_contradiction(kind, detected)
    if contradiction:
        report = Report(status=FAILED, message=f"The file is {contradiction}; upload it as its real kind.",
                        detected_kind=detected)
    else:
        handle.seek(0)
        report = _inspect(kind, handle, size)
        if report.detected_kind is None:
            report.detected_kind = detected
        if kind in SCANNED_AS_PICKLES:
            return report
    handle.seek(0)
    as_pickle = pickles.scan_as_loaded(handle)
    if as_pickle is None:
        return report
    return with_pickle_reading(kind, report, as_pickle)


def with_pickle_reading(kind: str, report: Report, as_pickle: Report) -> Report:
    """A kind's report combined with what pickle.load would do with the same file (report.combine)."""
    status = message = None
    reading = as_pickle.details.get("as_loaded", {})
    accepted_by = reading.get("accepted_by")
    if kind == "other" and accepted_by and not reading.get("constants_only") and as_pickle.status != QUARANTINED:
        # Nothing recognised is no reason to pass a pickle: as a pickle kind it is scanned whole.
        # (inspect_other has failed it already when its header says pickle, and says so.) A
        # pickle of constants only (no import: "N." is one) is plain data to every loader.
        status, message = FAILED, as_pickle.message
        if report.status != FAILED:
            real_kind = "pt" if "torch.load" in accepted_by else "joblib" if "joblib.load" in accepted_by else "pkl"
            message += f"; upload it as kind '{real_kind}' so it can be scanned"
    return combine(report, as_pickle, key="read_as_pickle", status=status, message=message)
