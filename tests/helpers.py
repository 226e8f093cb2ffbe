"""Small helpers shared by the API tests."""

from django.test import TestCase

# A real, benign pickle (the integer 1): hashing and introspection take it to `ready`.
PICKLE = b"\x80\x04K\x01."


def upload(client, model_id, number, kind="pkl", body: bytes = PICKLE, *, process: bool = True, **headers):
    """PUT a file; with `process`, the work queued on commit (hashing, introspection) runs
    before this returns, as a worker would have done, so the format reaches its final state."""
    with TestCase.captureOnCommitCallbacks(execute=process):
        return client.generic(
            "PUT", f"/api/v1/models/{model_id}/versions/{number}/formats/{kind}/file?filename=model.{kind}",
            data=body, content_type="application/octet-stream", **headers,
        )


def store_file(version, kind="pkl", body: bytes = PICKLE, *, actor=None):
    """Upload through the service and run the queued processing, as a worker would."""
    import io

    from registry import services

    with TestCase.captureOnCommitCallbacks(execute=True):
        fmt = services.format_upload(actor=actor, version=version, kind=kind, stream=io.BytesIO(body),
                                     content_length=len(body))
    fmt.refresh_from_db()
    return fmt


def file_url(version, kind="pkl") -> str:
    return f"/api/v1/models/{version.model_id}/versions/{version.number}/formats/{kind}/file"
