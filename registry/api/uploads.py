"""REST API v1: direct uploads, the file's parts sent straight to the bucket (registry/services/uploads.py).

  POST   /api/v1/models/{id}/versions/{n}/formats/{kind}/uploads/   start: {size, sha256, filename?, content_type?}
  GET    /api/v1/uploads/{upload}/parts/?numbers=1-8,12             the parts stored, and URLs to PUT the asked ones to
  POST   /api/v1/uploads/{upload}/complete/                         check the parts, make the file the format's
  DELETE /api/v1/uploads/{upload}/                                  abort
"""

from __future__ import annotations

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers, status
from rest_framework.response import Response

from registry import selectors
from registry.api import serializers as s
from registry.api.views import ERRORS, STORAGE_ERRORS, RegistryView, requires
from registry.errors import InvalidInput
from registry.permissions import Perm
from registry.services import uploads


class UploadStartSerializer(serializers.Serializer):
    size = serializers.IntegerField(min_value=1, help_text="The file's size in bytes")
    sha256 = serializers.CharField(help_text="Hex SHA-256 of the whole file: the workers check the stored file")
    filename = serializers.CharField(required=False, allow_blank=True, default="")
    content_type = serializers.CharField(required=False, allow_blank=True, default="")


class PartSerializer(serializers.Serializer):
    number = serializers.IntegerField()
    size = serializers.IntegerField()
    etag = serializers.CharField()


class UploadSessionSerializer(serializers.Serializer):
    id = serializers.UUIDField()
    kind = serializers.CharField()
    size = serializers.IntegerField()
    part_size = serializers.IntegerField()
    part_count = serializers.IntegerField()
    sha256 = serializers.CharField(source="declared_sha256")
    filename = serializers.CharField(source="original_filename")
    expires_at = serializers.DateTimeField()


class UploadPartsSerializer(serializers.Serializer):
    upload = UploadSessionSerializer()
    stored = PartSerializer(many=True)
    urls = serializers.DictField(child=serializers.URLField(),
                                 help_text="Part number → a presigned URL: PUT exactly that part's bytes to it")


def parse_numbers(text: str, last: int) -> list[int]:
    """'1-8,12' → [1, ..., 8, 12]; empty: every part (up to the per-request cap)."""
    if not text:
        return list(range(1, min(last, uploads.MAX_URLS_PER_REQUEST) + 1))
    numbers = []
    for piece in text.split(","):
        first, _, end = piece.strip().partition("-")
        try:
            first_n, end_n = int(first), int(end or first)
        except ValueError:
            raise InvalidInput("'numbers' is a list of part numbers and ranges, such as 1-8,12.",
                               field="numbers") from None
        if end_n < first_n or end_n - first_n >= uploads.MAX_URLS_PER_REQUEST or len(numbers) > uploads.MAX_URLS_PER_REQUEST:
            raise InvalidInput(f"Ask for at most {uploads.MAX_URLS_PER_REQUEST} part URLs at a time.", field="numbers")
        numbers += range(first_n, end_n + 1)
    return sorted(set(numbers))


class UploadView(RegistryView):
    def upload(self, upload_id):
        """The open session: 404 unless the user may edit its model (who may not never learns of it)."""
        return self._once(("upload", upload_id), lambda: uploads.upload_session_get(self.request.user, upload_id))

    def context_of(self, *, upload_id=None, **kwargs):
        if upload_id is not None:
            return self.upload(upload_id).version.model.context
        return super().context_of(**kwargs)

    def model_id_of(self, *, upload_id=None, **kwargs):
        if upload_id is not None:
            return self.upload(upload_id).version.model_id
        return super().model_id_of(**kwargs)


class UploadStartView(UploadView):
    @extend_schema(request=UploadStartSerializer, responses={201: UploadSessionSerializer, **ERRORS, **STORAGE_ERRORS},
                   summary="Start a direct upload of the format's file (S3 storage): the parts go straight to the "
                           "bucket; 409 direct_upload_unavailable on local-file storage (use PUT …/file)")
    @requires(Perm.EDIT_MODEL)
    def post(self, request, model_id, number, kind):
        version = self.version(model_id, number)
        data = self.input(UploadStartSerializer)
        session = uploads.upload_session_start(actor=request.user, version=version, kind=kind, **data)
        return Response(UploadSessionSerializer(session).data, status=status.HTTP_201_CREATED)


class UploadDetailView(UploadView):
    @extend_schema(responses={204: None, **ERRORS}, summary="Abort a direct upload (its stored parts are dropped)")
    @requires(Perm.EDIT_MODEL)
    def delete(self, request, upload_id):
        uploads.upload_session_abort(actor=request.user, session=self.upload(upload_id))
        return Response(status=status.HTTP_204_NO_CONTENT)


class UploadPartsView(UploadView):
    @extend_schema(
        parameters=[OpenApiParameter("numbers", str, description="Part numbers and ranges to sign (1-8,12); "
                                                                  "default: the first 1,000")],
        responses={200: UploadPartsSerializer, **ERRORS, **STORAGE_ERRORS},
        summary="The parts the bucket holds, and presigned URLs to PUT the asked parts to (resume from any process)",
    )
    def get(self, request, upload_id):
        session = self.upload(upload_id)
        numbers = parse_numbers(request.query_params.get("numbers", ""), session.part_count)
        stored, urls = uploads.upload_session_parts(actor=request.user, session=session, numbers=numbers)
        return Response({"upload": UploadSessionSerializer(session).data, "stored": stored,
                         "urls": {str(n): url for n, url in urls.items()}})


class UploadCompleteView(UploadView):
    @extend_schema(request=None, responses={200: s.FormatSerializer, **ERRORS, **STORAGE_ERRORS},
                   summary="Complete a direct upload: every part must be stored with its size; the file becomes "
                           "the format's, `uploaded`, and the workers check it against the declared SHA-256")
    @requires(Perm.EDIT_MODEL)
    def post(self, request, upload_id):
        fmt = uploads.upload_session_complete(actor=request.user, session=self.upload(upload_id))
        return Response(s.FormatSerializer(selectors.format_get(fmt.version, fmt.kind)).data)


__all__ = ["UploadStartView", "UploadDetailView", "UploadPartsView", "UploadCompleteView"]
