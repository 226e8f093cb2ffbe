"""One entry point for the workers: pick the inspector for a format kind, confirm the kind
from the content, and return a Report. Nothing here executes or imports uploaded bytes."""

from __future__ import annotations

from typing import IO

from registry.introspection import artifact, headers, onnx_model, pickles, pmml, safetensors_file
from registry.introspection.report import FAILED, Report


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
        return Report(status=FAILED, message=f"The file is {contradiction}; upload it as its real kind.",
                      detected_kind=detected)
    handle.seek(0)
    report = _inspect(kind, handle, size)
    if report.detected_kind is None:
        report.detected_kind = detected
    return report
