"""REST API v1. Each view parses input, calls one selector or service, and serializes.

Every handler that writes names the permission it needs with @requires (or @staff_only): it is
decided there, once per request, before the body is read (registry/permissions.py).
"""

from __future__ import annotations

from functools import cache, partial, wraps

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import status
from rest_framework.response import Response
from rest_framework.settings import api_settings
from rest_framework.views import APIView

from registry import selectors, services
from registry.api import serializers as s
from registry.api.conditional import frozen_response
from registry.api.files import FileNegotiation, attachment_download_response, download_response, upload_filename
from registry.api.pagination import CursorPagination
from registry.errors import InvalidInput, LengthRequired
from registry.models import AliasMoveRequest, DeliveryStatus
from registry.permissions import (STAFF, Perm, effective_roles, require, require_somewhere, require_staff,
                                  require_unrestricted, sso_rule_context)
from registry.services.formats import ACKNOWLEDGED_DOWNLOAD_STATUSES

ERRORS = {
    400: OpenApiTypes.OBJECT, 401: OpenApiTypes.OBJECT, 403: OpenApiTypes.OBJECT,
    404: OpenApiTypes.OBJECT, 409: OpenApiTypes.OBJECT,
    # Any request: past a rate (registry/api/throttling.py), the database not answering.
    429: OpenApiTypes.OBJECT, 503: OpenApiTypes.OBJECT,
}


# The file store failing: 503 with Retry-After (unreachable), 507 (a full disk).
STORAGE_ERRORS = {503: OpenApiTypes.OBJECT, 507: OpenApiTypes.OBJECT}


def requires(permission: Perm):
    """Decorate a handler that writes: the user needs `permission` in the context of the object
    its URL names (RegistryView.context_of), else 403, decided before the body is read or
    validated. An object the user cannot see is not found there first (404), whatever the
    permission, so nothing is learnt about contexts the user is not in."""
    def decorate(handler):
        @wraps(handler)
        def decided(view, request, *args, **kwargs):
            require(request.user, view.context_of(**kwargs), permission, model_id=view.model_id_of(**kwargs))
            return handler(view, request, *args, **kwargs)

        decided.required_permission = permission
        return decided

    return decorate


def requires_somewhere(permission: Perm):
    """Decorate a handler that writes in the context its body names: the user needs `permission`
    in some context, else 403, decided before the body is read; the context the body names is
    then checked by the handler (registry.permissions.sso_rule_context: 400 if not managed)."""
    def decorate(handler):
        @wraps(handler)
        def decided(view, request, *args, **kwargs):
            require_somewhere(request.user, permission)
            return handler(view, request, *args, **kwargs)

        decided.required_permission = permission
        return decided

    return decorate
UNRESTRICTED = "unrestricted-credentials"


def unrestricted_only(handler):
    """Decorate a handler acting on the user's own tokens: a browser session or an unscoped,
    not read-only token (403 otherwise), so no token mints or revokes beyond its own reach."""
    @wraps(handler)
    def decided(view, request, *args, **kwargs):
        require_unrestricted(request.user)
        return handler(view, request, *args, **kwargs)

    decided.required_permission = UNRESTRICTED
    return decided


def staff_only(handler):
    """Decorate a handler that only site staff may call (403 for anyone else, before the body is read)."""
    @wraps(handler)
    def decided(view, request, *args, **kwargs):
        require_staff(request.user)
        return handler(view, request, *args, **kwargs)

    decided.required_permission = STAFF
    return decided


@cache
def _input_serializer(serializer_class, partial: bool):
    """One instance of each input serializer (partial or whole), its fields built once. DRF
    builds a serializer's fields for every instance, deep copies of the declared ones: 0.17 ms
    of a model's create in process (bench/README.md). run_validation() keeps nothing of the
    data it validates on the serializer (DRF validates a nested serializer's data the same
    way), and the input serializers read no context: one instance serves every request."""
    return serializer_class(partial=partial)


class RegistryView(APIView):
    pagination_class = api_settings.DEFAULT_PAGINATION_CLASS

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        # Objects this request's URL names, read once: the permission decision and the handler
        # share them (a view instance serves one request).
        self._read: dict = {}

    def _once(self, key, read):
        if key not in self._read:
            self._read[key] = read()
        return self._read[key]

    def paginated(self, queryset, serializer_class=None, *, serialize=None, **context):
        """A page of `queryset`, by its declared serializer or its serialize function."""
        paginator = self.pagination_class()
        page = paginator.paginate_queryset(queryset, self.request, view=self)
        if serialize is not None:
            data = [serialize(row) for row in page]
        else:
            data = serializer_class(page, many=True, context={"request": self.request, **context}).data
        return paginator.get_paginated_response(data)

    def read_page(self, read, *, serialize):
        """A page that a selector reads itself, `read(cursor=..., size=...)` (a keyset.Page), for
        the view's CursorPagination."""
        paginator = self.pagination_class()
        cursor, size = paginator.page_request(self.request)
        page = read(cursor=cursor, size=size)
        return paginator.page_response(page, [serialize(row) for row in page.rows])

    def input(self, serializer_class, *, partial: bool = False) -> dict:
        """The request's JSON object, validated by `serializer_class` (400 with each field's
        errors, as is_valid() answers)."""
        if not isinstance(self.request.data, dict):
            raise InvalidInput("The request body must be a JSON object.")
        return dict(_input_serializer(serializer_class, partial).run_validation(self.request.data))

    def model(self, model_id):
        return self._once(("model", model_id), lambda: selectors.model_get(self.request.user, model_id))

    def version(self, model_id, number):
        return self._once(("version", model_id, number),
                          lambda: selectors.version_get(self.model(model_id), number))

    def context(self, ctx):
        """The context named by slug `ctx` in the URL."""
        return self._once(("context", ctx), lambda: selectors.context_get(self.request.user, ctx))

    def whole_context(self, ctx):
        """The context named by `ctx`, for a read of its contents as a whole (members, audit log,
        records, trusted imports): 403 for a token limited to some models."""
        context = self.context(ctx)
        require(self.request.user, context, Perm.VIEW_MODEL)
        return context

    def record(self, record_id):
        """A training record: context-wide, like the records list (a token limited to models: 403)."""
        def read():
            record = selectors.record_get(self.request.user, record_id)
            require(self.request.user, record.context, Perm.VIEW_MODEL)
            return record

        return self._once(("record", record_id), read)

    def model_id_of(self, *, model_id=None, **_):
        """The model the URL's object belongs to, if any: a permission on it, not on the whole context."""
        return model_id

    def sso_rule(self, rule_id):
        return self._once(("sso_rule", rule_id), lambda: selectors.sso_rule_get(self.request.user, rule_id))

    def context_of(self, *, ctx=None, model_id=None, number=None, record_id=None, rule_id=None, **_):
        """The context whose rules apply to the object the URL names: the deepest of context,
        model and version it names must exist and be visible (404 otherwise)."""
        if ctx is not None:
            return self.context(ctx)
        if rule_id is not None:
            return self.sso_rule(rule_id).context
        if record_id is not None:
            return self.record(record_id).context
        if number is not None:
            return self.version(model_id, number).model.context
        return self.model(model_id).context


def _roles(user) -> dict:
    return effective_roles(user)


# --- contexts ---------------------------------------------------------------------------

class ContextListView(RegistryView):
    @extend_schema(responses=s.ContextSerializer(many=True), summary="List the contexts you can see")
    def get(self, request):
        return self.paginated(selectors.context_list(request.user), s.ContextSerializer, roles=_roles(request.user))

    @extend_schema(request=s.ContextCreateSerializer, responses={201: s.ContextSerializer, **ERRORS},
                   summary="Create a context (site staff)")
    @staff_only
    def post(self, request):
        data = self.input(s.ContextCreateSerializer)
        context = services.context_create(actor=request.user, **data)
        return Response(s.ContextSerializer(context).data, status=status.HTTP_201_CREATED)


class ContextDetailView(RegistryView):
    @extend_schema(responses=s.ContextSerializer)
    def get(self, request, ctx):
        context = selectors.context_detail(request.user, ctx)
        return Response(s.ContextSerializer(context, context={"roles": _roles(request.user)}).data)


class MemberListView(RegistryView):
    @extend_schema(responses=s.MemberSerializer(many=True), summary="Users and groups with a role here")
    def get(self, request, ctx):
        return self.paginated(selectors.member_list(self.whole_context(ctx)), s.MemberSerializer)

    @extend_schema(request=s.MemberCreateSerializer, responses={201: s.MemberSerializer, **ERRORS},
                   summary="Grant a role to a user or a group (admins)")
    @requires(Perm.MANAGE_CONTEXT)
    def post(self, request, ctx):
        context = self.context(ctx)
        data = self.input(s.MemberCreateSerializer)
        membership = services.membership_set(
            actor=request.user, context=context, role=data["role"],
            username=data.get("username"), group=data.get("group"), create_only=True,
        )
        return Response(s.MemberSerializer(membership).data, status=status.HTTP_201_CREATED)


class MemberDetailView(RegistryView):
    """A user's membership; groups are addressed under /groups/{name}/."""

    principal = "username"

    def _kwargs(self, name):
        return {self.principal: name}

    @extend_schema(request=s.MemberUpdateSerializer, responses={200: s.MemberSerializer, **ERRORS},
                   summary="Change a member's role (admins)")
    @requires(Perm.MANAGE_CONTEXT)
    def patch(self, request, ctx, name):
        context = self.context(ctx)
        data = self.input(s.MemberUpdateSerializer)
        membership = services.membership_set(actor=request.user, context=context, role=data["role"], **self._kwargs(name))
        return Response(s.MemberSerializer(membership).data)

    @extend_schema(responses={204: None, **ERRORS}, summary="Remove a member (admins)")
    @requires(Perm.MANAGE_CONTEXT)
    def delete(self, request, ctx, name):
        context = self.context(ctx)
        services.membership_remove(actor=request.user, context=context, **self._kwargs(name))
        return Response(status=status.HTTP_204_NO_CONTENT)


class GroupMemberDetailView(MemberDetailView):
    principal = "group"


class AuditListView(RegistryView):
    pagination_class = CursorPagination

    @extend_schema(
        responses=s.AuditEventSerializer(many=True),
        parameters=[OpenApiParameter(name, str, description=f"Filter by {name}")
                    for name in ("action", "actor", "object_type", "object_id")],
        summary="The context's audit log, newest first",
    )
    def get(self, request, ctx):
        context = self.whole_context(ctx)
        params = request.query_params
        events = selectors.audit_list(
            context, action=params.get("action", ""), actor=params.get("actor", ""),
            object_type=params.get("object_type", ""), object_id=params.get("object_id", ""),
        )
        return self.paginated(events, s.AuditEventSerializer)


# --- trusted imports --------------------------------------------------------------------

class TrustedImportListView(RegistryView):
    @extend_schema(responses=s.TrustedImportSerializer(many=True),
                   summary="Third-party imports trusted in pickles of this context, with who, when and why")
    def get(self, request, ctx):
        return self.paginated(selectors.trusted_import_list(self.whole_context(ctx)), s.TrustedImportSerializer)

    @extend_schema(
        request=s.TrustedImportCreateSerializer,
        responses={201: s.TrustedImportSerializer(many=True), 200: s.TrustedImportSerializer(many=True), **ERRORS},
        summary="Trust imports (publishers); formats in review whose imports are now all trusted become ready",
        description="Idempotent: 201 when at least one import was new, 200 when all were trusted already. "
                    "A name the scanner treats as dangerous can never be trusted (400).",
    )
    @requires(Perm.PUBLISH_VERSION)
    def post(self, request, ctx):
        context = self.context(ctx)
        data = self.input(s.TrustedImportCreateSerializer)
        rows = services.trusted_imports_add(actor=request.user, context=context, names=data["imports"],
                                            reason=data["reason"])
        created = any(row.newly_trusted for row in rows)
        return Response(s.TrustedImportSerializer(rows, many=True).data,
                        status=status.HTTP_201_CREATED if created else status.HTTP_200_OK)


class TrustedImportDetailView(RegistryView):
    @extend_schema(responses={204: None, **ERRORS},
                   summary="Stop trusting an import (publishers); draft formats ready only because of it "
                           "go back to review, published versions stay as they are")
    @requires(Perm.PUBLISH_VERSION)
    def delete(self, request, ctx, name):
        context = self.context(ctx)
        services.trusted_import_revoke(actor=request.user, context=context, name=name)
        return Response(status=status.HTTP_204_NO_CONTENT)


# --- webhooks ---------------------------------------------------------------------------

def _secret_response(webhook, secret: str, code: int) -> Response:
    """A hook with its secret, shown once: no cache may keep this answer."""
    response = Response({**s.WebhookSerializer(webhook).data, "secret": secret}, status=code)
    response["Cache-Control"] = "no-store"
    return response


class WebhookListView(RegistryView):
    @extend_schema(responses={200: s.WebhookSerializer(many=True), **ERRORS}, summary="The context's webhooks (admins)")
    @requires(Perm.MANAGE_WEBHOOKS)
    def get(self, request, ctx):
        return self.paginated(selectors.webhook_list(self.context(ctx)), s.WebhookSerializer)

    @extend_schema(request=s.WebhookCreateSerializer, responses={201: s.WebhookCreatedSerializer, **ERRORS},
                   summary="Register a webhook (admins); the answer holds its signing secret, shown this once")
    @requires(Perm.MANAGE_WEBHOOKS)
    def post(self, request, ctx):
        data = self.input(s.WebhookCreateSerializer)
        webhook, secret = services.webhook_create(actor=request.user, context=self.context(ctx), **data)
        return _secret_response(webhook, secret, status.HTTP_201_CREATED)


class WebhookDetailView(RegistryView):
    def webhook(self, ctx, webhook_id):
        return selectors.webhook_get(self.context(ctx), webhook_id)

    @extend_schema(responses={200: s.WebhookSerializer, **ERRORS}, summary="A webhook (admins)")
    @requires(Perm.MANAGE_WEBHOOKS)
    def get(self, request, ctx, webhook_id):
        return Response(s.WebhookSerializer(self.webhook(ctx, webhook_id)).data)

    @extend_schema(request=s.WebhookUpdateSerializer, responses={200: s.WebhookSerializer, **ERRORS},
                   summary="Change a webhook: URL, events, description, enabled (admins); disabling it "
                           "cancels its pending deliveries")
    @requires(Perm.MANAGE_WEBHOOKS)
    def patch(self, request, ctx, webhook_id):
        webhook = self.webhook(ctx, webhook_id)
        data = self.input(s.WebhookUpdateSerializer, partial=True)
        services.webhook_update(actor=request.user, webhook=webhook, **data)
        return Response(s.WebhookSerializer(self.webhook(ctx, webhook_id)).data)

    @extend_schema(responses={204: None, **ERRORS}, summary="Delete a webhook and its deliveries (admins)")
    @requires(Perm.MANAGE_WEBHOOKS)
    def delete(self, request, ctx, webhook_id):
        services.webhook_delete(actor=request.user, webhook=self.webhook(ctx, webhook_id))
        return Response(status=status.HTTP_204_NO_CONTENT)


class WebhookTestView(WebhookDetailView):
    http_method_names = ["post", "options"]

    @extend_schema(request=None, responses={202: s.WebhookDeliverySerializer, **ERRORS},
                   summary="Send the webhook a test event (admins); its delivery is listed with the others")
    @requires(Perm.MANAGE_WEBHOOKS)
    def post(self, request, ctx, webhook_id):
        delivery = services.webhook_test(actor=request.user, webhook=self.webhook(ctx, webhook_id))
        return Response(s.WebhookDeliverySerializer(delivery).data, status=status.HTTP_202_ACCEPTED)


class WebhookRotateSecretView(WebhookDetailView):
    http_method_names = ["post", "options"]

    @extend_schema(request=None, responses={200: s.WebhookCreatedSerializer, **ERRORS},
                   summary="Give the webhook a new signing secret, shown in this answer only (admins)")
    @requires(Perm.MANAGE_WEBHOOKS)
    def post(self, request, ctx, webhook_id):
        webhook, secret = services.webhook_secret_rotate(actor=request.user, webhook=self.webhook(ctx, webhook_id))
        return _secret_response(self.webhook(ctx, webhook.pk), secret, status.HTTP_200_OK)


class WebhookDeliveryListView(WebhookDetailView):
    pagination_class = CursorPagination
    http_method_names = ["get", "head", "options"]

    @extend_schema(
        responses={200: s.WebhookDeliverySerializer(many=True), **ERRORS},
        parameters=[OpenApiParameter("status", str, enum=["pending", "delivered", "failed", "cancelled"],
                                     description="Only deliveries in this state")],
        summary="A webhook's deliveries, newest first, each with its attempts (admins)",
    )
    @requires(Perm.MANAGE_WEBHOOKS)
    def get(self, request, ctx, webhook_id):
        wanted = request.query_params.get("status", "")
        if wanted and wanted not in DeliveryStatus.values:
            raise InvalidInput(f"'status' must be one of {', '.join(DeliveryStatus.values)}.", field="status")
        deliveries = selectors.webhook_delivery_list(self.webhook(ctx, webhook_id), status=wanted)
        return self.paginated(deliveries, s.WebhookDeliverySerializer)


# --- single sign-on rules ----------------------------------------------------------------

class SsoRuleListView(RegistryView):
    @extend_schema(responses=s.SsoRuleSerializer(many=True),
                   summary="Single sign-on rules of the contexts you manage (site staff: all)")
    def get(self, request):
        return self.paginated(selectors.sso_rule_list(request.user), s.SsoRuleSerializer)

    @extend_schema(
        request=s.SsoRuleCreateSerializer, responses={201: s.SsoRuleSerializer, **ERRORS},
        summary="Map a value of the roles claim to a role in a context you manage (admins)",
        description="Applies from each user's next sign-in. 400 for an unknown role, or a context that does not "
                    "exist or that you do not manage; 409 when the value already has a rule in that context.",
    )
    @requires_somewhere(Perm.MANAGE_CONTEXT)
    def post(self, request):
        data = self.input(s.SsoRuleCreateSerializer)
        context = sso_rule_context(request.user, data["context"])
        rule = services.sso_rule_create(actor=request.user, context=context, claim_value=data["claim_value"],
                                        role=data["role"])
        rule.granted = 0
        return Response(s.SsoRuleSerializer(rule).data, status=status.HTTP_201_CREATED)


class SsoRuleDetailView(RegistryView):
    @extend_schema(responses={204: None, **ERRORS},
                   summary="Delete a single sign-on rule (admins of its context); the roles it granted go at once")
    @requires(Perm.MANAGE_CONTEXT)
    def delete(self, request, rule_id):
        services.sso_rule_delete(actor=request.user, rule=self.sso_rule(rule_id))
        return Response(status=status.HTTP_204_NO_CONTENT)


# --- models -----------------------------------------------------------------------------

class ModelListView(RegistryView):
    pagination_class = CursorPagination

    @extend_schema(
        responses=s.ModelSerializer(many=True),
        parameters=[
            OpenApiParameter("search", str, description="Words in the name, description or tags"),
            OpenApiParameter("tag", str, many=True, description="Only models with this tag (repeatable)"),
            OpenApiParameter("name", str, description="Exact name (case-insensitive)"),
            OpenApiParameter("ordering", str, description="name, created, updated or versions; '-' to reverse"),
        ],
        summary="List and search models",
    )
    def get(self, request, ctx):
        context = selectors.context_get(request.user, ctx)
        params = request.query_params
        return self.read_page(partial(
            selectors.model_list, request.user, context, search=params.get("search", ""),
            tags=params.getlist("tag"), name=params.get("name", ""), ordering=params.get("ordering", ""),
        ), serialize=s.serialize_model)

    @extend_schema(request=s.ModelCreateSerializer, responses={201: s.ModelSerializer, **ERRORS})
    @requires(Perm.EDIT_MODEL)
    def post(self, request, ctx):
        context = self.context(ctx)
        model = services.model_create(actor=request.user, context=context, **self.input(s.ModelCreateSerializer))
        return Response(s.serialize_model(model), status=201)


class ModelDetailView(RegistryView):
    @extend_schema(responses=s.ModelSerializer)
    def get(self, request, model_id):
        return Response(s.serialize_model(selectors.model_detail(request.user, model_id)))

    @extend_schema(request=s.ModelCreateSerializer, responses={200: s.ModelSerializer, **ERRORS})
    @requires(Perm.EDIT_MODEL)
    def patch(self, request, model_id):
        model = self.model(model_id)
        services.model_update(actor=request.user, model=model, **self.input(s.ModelCreateSerializer, partial=True))
        return Response(s.serialize_model(selectors.model_detail(request.user, model_id)))

    @extend_schema(responses={204: None, **ERRORS}, summary="Delete a model, its versions and files (admins)")
    @requires(Perm.DELETE_MODEL)
    def delete(self, request, model_id):
        services.model_delete(actor=request.user, model=self.model(model_id))
        return Response(status=status.HTTP_204_NO_CONTENT)


# --- versions ---------------------------------------------------------------------------

class VersionListView(RegistryView):
    @extend_schema(responses=s.VersionSerializer(many=True))
    def get(self, request, model_id):
        return self.paginated(selectors.version_list(self.model(model_id)), serialize=s.serialize_version)

    @extend_schema(request=s.VersionWriteSerializer, responses={201: s.VersionSerializer, **ERRORS})
    @requires(Perm.EDIT_MODEL)
    def post(self, request, model_id):
        model = self.model(model_id)
        version = services.version_create(actor=request.user, model=model, **self.input(s.VersionWriteSerializer))
        return Response(s.serialize_version(version), status=201)


class VersionDetailView(RegistryView):
    @extend_schema(responses={200: s.VersionSerializer, 304: None, **ERRORS},
                   summary="A version (published: with a strong ETag; If-None-Match answers 304)")
    def get(self, request, model_id, number):
        version = selectors.version_detail(self.model(model_id), number)
        if version.is_published:
            return frozen_response(request, s.version_state(version), lambda: s.serialize_version(version))
        return Response(s.serialize_version(version))

    @extend_schema(request=s.VersionWriteSerializer, responses={200: s.VersionSerializer, **ERRORS})
    @requires(Perm.EDIT_MODEL)
    def patch(self, request, model_id, number):
        version = self.version(model_id, number)
        services.version_update(actor=request.user, version=version, **self.input(s.VersionWriteSerializer, partial=True))
        return Response(s.serialize_version(selectors.version_detail(version.model, number)))

    @extend_schema(responses={204: None, **ERRORS}, summary="Delete a version and its files (admins)")
    @requires(Perm.DELETE_MODEL)
    def delete(self, request, model_id, number):
        services.version_delete(actor=request.user, version=self.version(model_id, number))
        return Response(status=status.HTTP_204_NO_CONTENT)


class VersionPublishView(RegistryView):
    @extend_schema(request=None, responses={200: s.VersionSerializer, **ERRORS}, summary="Publish (freeze) a version")
    @requires(Perm.PUBLISH_VERSION)
    def post(self, request, model_id, number):
        version = self.version(model_id, number)
        services.version_publish(actor=request.user, version=version)
        return Response(s.serialize_version(selectors.version_detail(version.model, number)))


def _metric_items(request) -> list:
    """A metrics body is one point (an object) or many (a list): always a list to the service."""
    payload = request.data
    return list(payload) if isinstance(payload, list) else [payload]


class MetricListView(RegistryView):
    pagination_class = CursorPagination

    @extend_schema(responses=s.MetricSerializer(many=True),
                   parameters=[OpenApiParameter("key", str, description="Only this metric")])
    def get(self, request, model_id, number):
        version = self.version(model_id, number)
        return self.paginated(selectors.metric_list(version, key=request.query_params.get("key", "")), s.MetricSerializer)

    @extend_schema(
        request=s.MetricSerializer(many=True),
        responses={201: s.MetricSerializer(many=True), **ERRORS},
        summary="Log one metric (an object) or many (a list)",
    )
    @requires(Perm.EDIT_MODEL)
    def post(self, request, model_id, number):
        version = self.version(model_id, number)
        metrics = services.metrics_log(actor=request.user, version=version, metrics=_metric_items(request))
        return Response(s.MetricSerializer(metrics, many=True).data, status=201)


class ModelMetricListView(RegistryView):
    pagination_class = CursorPagination

    @extend_schema(responses=s.MetricSerializer(many=True), summary="Metric points logged on the model itself",
                   parameters=[OpenApiParameter("key", str, description="Only this metric")])
    def get(self, request, model_id):
        return self.paginated(selectors.model_metric_list(self.model(model_id), key=request.query_params.get("key", "")),
                              s.MetricSerializer)

    @extend_schema(
        request=s.MetricSerializer(many=True),
        responses={201: s.MetricSerializer(many=True), **ERRORS},
        summary="Log one model metric (an object) or many (a list), e.g. a monitoring figure across versions",
    )
    @requires(Perm.EDIT_MODEL)
    def post(self, request, model_id):
        metrics = services.model_metrics_log(actor=request.user, model=self.model(model_id),
                                             metrics=_metric_items(request))
        return Response(s.MetricSerializer(metrics, many=True).data, status=201)


class MetricAcrossVersionsView(RegistryView):
    @extend_schema(
        responses={200: s.MetricAcrossVersionsSerializer, **ERRORS},
        parameters=[OpenApiParameter("key", str, required=True, description="The version metric to follow")],
        summary="One version metric across the model's versions: each version's latest value",
    )
    def get(self, request, model_id):
        model = self.model(model_id)
        key = request.query_params.get("key", "")
        if not key.strip():
            raise InvalidInput("Name the metric to follow across versions: ?key=auc.", field="key")
        points = selectors.metric_across_versions(model, key)
        return Response(s.MetricAcrossVersionsSerializer({"key": key, "versions": points}).data)


# --- attachments: files of the model itself -----------------------------------------------

def _content_length(raw) -> int:
    """The request's declared body length: 411 without one, 400 when it is not a number."""
    length = raw.META.get("CONTENT_LENGTH")
    if length in (None, ""):
        raise LengthRequired("Send the file with a Content-Length header.")
    try:
        content_length = int(length)
    except ValueError:
        content_length = -1
    if content_length < 0:
        raise InvalidInput("Content-Length must be a number.", field="Content-Length")
    return content_length


def _flag(request, name: str) -> bool:
    value = request.query_params.get(name, "").lower()
    if value not in ("", "0", "1", "true", "false", "yes", "no"):
        raise InvalidInput(f"'{name}' is 1 or 0 (true or false).", field=name)
    return value in ("1", "true", "yes")


class AttachmentListView(RegistryView):
    @extend_schema(responses=s.AttachmentSerializer(many=True),
                   summary="The model's attachments (model cards, reports, plots...), by name")
    def get(self, request, model_id):
        return self.paginated(selectors.attachment_list(self.model(model_id)), s.AttachmentSerializer)


class AttachmentDetailView(RegistryView):
    @extend_schema(responses={200: s.AttachmentSerializer, **ERRORS}, summary="One attachment of the model")
    def get(self, request, model_id, name):
        return Response(s.AttachmentSerializer(selectors.attachment_get(self.model(model_id), name)).data)

    @extend_schema(responses={204: None, **ERRORS}, summary="Delete an attachment and its stored file")
    @requires(Perm.EDIT_MODEL)
    def delete(self, request, model_id, name):
        attachment = selectors.attachment_get(self.model(model_id), name)
        services.attachment_delete(actor=request.user, attachment=attachment)
        return Response(status=status.HTTP_204_NO_CONTENT)


class AttachmentFileView(RegistryView):
    parser_classes = []  # the body is read as a raw stream, never parsed or buffered
    content_negotiation_class = FileNegotiation

    @extend_schema(
        request={"application/octet-stream": OpenApiTypes.BINARY},
        parameters=[
            OpenApiParameter("overwrite", bool, description="Replace an attachment of that name (else 409 "
                                                            "attachment_exists)"),
            OpenApiParameter("description", str, description="A short description (500 characters); kept on a "
                                                             "replace that does not give one"),
            OpenApiParameter("X-Checksum-Sha256", str, OpenApiParameter.HEADER,
                             description="Hex SHA-256 of the body: a mismatch stores nothing (400 checksum_mismatch)"),
        ],
        responses={200: s.AttachmentSerializer, 201: s.AttachmentSerializer, 411: OpenApiTypes.OBJECT,
                   413: OpenApiTypes.OBJECT, **ERRORS, **STORAGE_ERRORS},
        summary="Upload an attachment (raw body, streamed): 201 new, 200 replaced. A serialized model is "
                "refused (400 serialized_model): upload it as a version's format",
    )
    @requires(Perm.EDIT_MODEL)
    def put(self, request, model_id, name):
        model = self.model(model_id)
        raw = request._request
        content_length = _content_length(raw)
        description = request.query_params.get("description")
        attachment, replaced = services.attachment_upload(
            actor=request.user, model=model, name=name, stream=raw, content_length=content_length,
            overwrite=_flag(request, "overwrite"), description=description,
            declared_sha256=raw.headers.get("X-Checksum-Sha256", ""))
        shown = selectors.attachment_get(model, attachment.name)
        return Response(s.AttachmentSerializer(shown).data,
                        status=status.HTTP_200_OK if replaced else status.HTTP_201_CREATED)

    @extend_schema(
        responses={(200, "application/octet-stream"): OpenApiTypes.BINARY,
                   (206, "application/octet-stream"): OpenApiTypes.BINARY,
                   304: None, 404: OpenApiTypes.OBJECT, 416: OpenApiTypes.OBJECT, 503: OpenApiTypes.OBJECT},
        summary="Download an attachment (streamed, as an attachment, never inline; ETag = SHA-256; honours Range)",
    )
    def get(self, request, model_id, name):
        attachment = selectors.attachment_get(self.model(model_id), name)
        return attachment_download_response(request._request, attachment)


# --- formats ----------------------------------------------------------------------------

class FormatListView(RegistryView):
    @extend_schema(responses=s.FormatSerializer(many=True),
                   summary="The version's formats (published: with a strong ETag; If-None-Match answers 304)")
    def get(self, request, model_id, number):
        version = self.version(model_id, number)
        formats = selectors.format_list(version)
        if not version.is_published:
            return self.paginated(formats, s.FormatSerializer)
        paginator = self.pagination_class()
        page = paginator.paginate_queryset(formats, request, view=self)
        # The page's links name this request's address.
        state = ("formats", request.build_absolute_uri(), *map(s.format_state, page))
        return frozen_response(request, state, lambda: paginator.get_paginated_response(
            s.FormatSerializer(page, many=True).data).data)

    @extend_schema(request=s.FormatCreateSerializer, responses={201: s.FormatSerializer, **ERRORS},
                   summary="Add a format (then PUT its file)")
    @requires(Perm.EDIT_MODEL)
    def post(self, request, model_id, number):
        version = self.version(model_id, number)
        data = self.input(s.FormatCreateSerializer)
        fmt = services.format_create(actor=request.user, version=version, **data)
        return Response(s.FormatSerializer(selectors.format_get(version, fmt.kind)).data, status=201)


class FormatDetailView(RegistryView):
    @extend_schema(responses={200: s.FormatSerializer, 304: None, **ERRORS},
                   summary="A format (of a published version: with a strong ETag; If-None-Match answers 304)")
    def get(self, request, model_id, number, kind):
        version = self.version(model_id, number)
        fmt = selectors.format_get(version, kind)
        if version.is_published:
            return frozen_response(request, s.format_state(fmt), lambda: s.FormatSerializer(fmt).data)
        return Response(s.FormatSerializer(fmt).data)

    @extend_schema(request=s.FormatUpdateSerializer, responses={200: s.FormatSerializer, **ERRORS},
                   summary="Set whether the file is required and fails on tamper (until publish)")
    @requires(Perm.EDIT_MODEL)
    def patch(self, request, model_id, number, kind):
        version = self.version(model_id, number)
        fmt = selectors.format_get(version, kind)
        services.format_update(actor=request.user, fmt=fmt, **self.input(s.FormatUpdateSerializer, partial=True))
        return Response(s.FormatSerializer(selectors.format_get(version, kind)).data)

    @extend_schema(responses={204: None, **ERRORS}, summary="Delete a format of an unpublished version")
    @requires(Perm.EDIT_MODEL)
    def delete(self, request, model_id, number, kind):
        fmt = selectors.format_get(self.version(model_id, number), kind)
        services.format_delete(actor=request.user, fmt=fmt)
        return Response(status=status.HTTP_204_NO_CONTENT)


class FormatApproveImportsView(RegistryView):
    @extend_schema(request=s.ApproveImportsSerializer, responses={200: s.FormatSerializer, **ERRORS},
                   summary="Approve the unvetted imports of a format in review (publishers): they become "
                           "trusted in the context, and the format is answered after re-evaluation")
    @requires(Perm.PUBLISH_VERSION)
    def post(self, request, model_id, number, kind):
        version = self.version(model_id, number)
        fmt = selectors.format_get(version, kind)
        data = self.input(s.ApproveImportsSerializer)
        services.format_imports_approve(actor=request.user, fmt=fmt, reason=data["reason"])
        return Response(s.FormatSerializer(selectors.format_get(version, kind)).data)


class FormatFileView(RegistryView):
    parser_classes = []  # the body is read as a raw stream, never parsed or buffered
    content_negotiation_class = FileNegotiation

    @extend_schema(
        request={"application/octet-stream": OpenApiTypes.BINARY},
        parameters=[
            OpenApiParameter("X-Checksum-Sha256", str, OpenApiParameter.HEADER, description="Hex SHA-256 of the body"),
            OpenApiParameter("Content-MD5", str, OpenApiParameter.HEADER, description="Base64 MD5 of the body"),
            OpenApiParameter("filename", str, description="Original filename, kept as metadata"),
            OpenApiParameter("X-Filename", str, OpenApiParameter.HEADER,
                             description="Original filename if `filename` is not given: percent-encoded UTF-8 "
                                         "or RFC 5987 `UTF-8''name`"),
        ],
        responses={200: s.FormatSerializer, 411: OpenApiTypes.OBJECT, 413: OpenApiTypes.OBJECT, **ERRORS,
                   **STORAGE_ERRORS},
        summary="Upload the file of a format (raw body, streamed)",
    )
    @requires(Perm.EDIT_MODEL)
    def put(self, request, model_id, number, kind):
        version = self.version(model_id, number)
        raw = request._request
        content_length = _content_length(raw)
        fmt = services.format_upload(
            actor=request.user, version=version, kind=kind, stream=raw, content_length=content_length,
            filename=upload_filename(request),
            content_type=raw.headers.get("Content-Type", ""),
            declared_sha256=raw.headers.get("X-Checksum-Sha256", ""),
            declared_md5=raw.headers.get("Content-MD5", ""),
        )
        return Response(s.FormatSerializer(selectors.format_get(version, fmt.kind)).data)

    @extend_schema(
        responses={(200, "application/octet-stream"): OpenApiTypes.BINARY,
                   (206, "application/octet-stream"): OpenApiTypes.BINARY,
                   404: OpenApiTypes.OBJECT, 409: OpenApiTypes.OBJECT, 416: OpenApiTypes.OBJECT,
                   503: OpenApiTypes.OBJECT},
        parameters=[OpenApiParameter(
            "acknowledge", str, enum=sorted(ACKNOWLEDGED_DOWNLOAD_STATUSES),
            description="The file's status, to download (audited) a file that is not ready: still being checked, "
                        "in review, quarantined, corrupt or failed; without it, or naming another status, such a "
                        "file answers 409 not_ready. Every download says the status in X-Registry-Format-Status")],
        summary="Download the file (streamed; honours Range)",
    )
    def get(self, request, model_id, number, kind):
        version = self.version(model_id, number)
        fmt = selectors.format_get(version, kind)
        services.format_download_gate(
            actor=request.user, fmt=fmt,
            acknowledge=request.query_params.get("acknowledge", ""))
        return download_response(request._request, fmt)


# --- manifests and tamper reports -------------------------------------------------------

class ManifestView(RegistryView):
    @extend_schema(
        responses={200: s.ManifestSerializer, 304: None, **ERRORS},
        parameters=[OpenApiParameter("frozen", bool, description="Add checksums, a timestamp and a lock checksum "
                                                                 "(409 until every file is hashed and ready)")],
        summary="The version's model manifest (published: with a strong ETag; If-None-Match answers 304)",
        description="A published version's frozen manifest is stamped with the time it was published, so it "
                    "is the same document every time it is asked for.",
    )
    def get(self, request, model_id, number):
        version = self.version(model_id, number)
        frozen = request.query_params.get("frozen", "").lower() in ("1", "true", "yes")
        formats = selectors.manifest_formats(version)
        if version.is_published:
            return frozen_response(request, s.manifest_state(version, formats, frozen=frozen),
                                   lambda: selectors.version_manifest(version, frozen=frozen, formats=formats))
        return Response(selectors.version_manifest(version, frozen=frozen, formats=formats))


class TamperReportView(RegistryView):
    # Each report may queue a re-hash of a file of up to 20 GiB: a token sends only so many.
    throttle_scope = "tamper_report"

    @extend_schema(request=s.TamperReportSerializer, responses={201: s.AuditEventSerializer, **ERRORS},
                   summary="Report a checksum or manifest mismatch found by a consumer (read-only tokens too)")
    @requires(Perm.VIEW_MODEL)
    def post(self, request, model_id, number):
        version = self.version(model_id, number)
        event = services.tamper_report(actor=request.user, version=version, **self.input(s.TamperReportSerializer))
        return Response(s.AuditEventSerializer(event).data, status=201)


# --- aliases ----------------------------------------------------------------------------

class AliasListView(RegistryView):
    @extend_schema(responses=s.AliasSerializer(many=True))
    def get(self, request, model_id):
        return self.paginated(selectors.alias_list(self.model(model_id)), serialize=s.serialize_alias)


class AliasDetailView(RegistryView):
    def _detail(self, model, alias):
        """`alias`: a name, or the Alias a service just wrote (its version and updater are
        known, so it is not read again)."""
        if isinstance(alias, str):
            alias = selectors.alias_get(model, alias)
        history = selectors.alias_moves(model, alias.name)
        return s.serialize_alias_detail(alias, history)

    @extend_schema(responses=s.AliasDetailSerializer, summary="An alias, its version and its history")
    def get(self, request, model_id, alias):
        return Response(self._detail(self.model(model_id), alias))

    def _moved_or_requested(self, model, alias, result):
        """200 with the alias, or 202 with the move request a protected alias needed."""
        if isinstance(result, AliasMoveRequest):
            request = selectors.alias_request_get(model, result.pk)
            return Response(s.serialize_alias_request(request, selectors.alias_request_check(request)),
                            status=status.HTTP_202_ACCEPTED)
        return Response(self._detail(model, result if result is not None else alias))

    @extend_schema(request=s.AliasSetSerializer,
                   responses={200: s.AliasDetailSerializer, 202: s.AliasRequestSerializer, **ERRORS},
                   summary="Set or move an alias to a published version (a protected alias, without "
                           "move-protected-alias: 202 with the move request made instead)")
    @requires(Perm.PUBLISH_VERSION)
    def put(self, request, model_id, alias):
        model = self.model(model_id)
        data = self.input(s.AliasSetSerializer)
        moved = services.alias_set(actor=request.user, model=model, name=alias, version_number=data["version"],
                                   comment=data["comment"])
        return self._moved_or_requested(model, alias, moved)

    @extend_schema(responses={204: None, 202: s.AliasRequestSerializer, **ERRORS},
                   summary="Remove an alias (a protected alias, without move-protected-alias: 202 with the "
                           "move request made instead)")
    @requires(Perm.PUBLISH_VERSION)
    def delete(self, request, model_id, alias):
        model = self.model(model_id)
        requested = services.alias_delete(actor=request.user, model=model, name=alias)
        if requested is not None:
            return self._moved_or_requested(model, alias, requested)
        return Response(status=status.HTTP_204_NO_CONTENT)


class AliasRollbackView(AliasDetailView):
    http_method_names = ["post", "options"]

    @extend_schema(request=None, responses={200: s.AliasDetailSerializer, 202: s.AliasRequestSerializer, **ERRORS},
                   summary="Move the alias back to the version it pointed to before (a protected alias, without "
                           "move-protected-alias: 202 with the move request made instead)")
    @requires(Perm.PUBLISH_VERSION)
    def post(self, request, model_id, alias):
        model = self.model(model_id)
        moved = services.alias_rollback(actor=request.user, model=model, name=alias)
        return self._moved_or_requested(model, alias, moved)


# --- protected aliases and move requests ------------------------------------------------

STATUS_PARAMETER = OpenApiParameter("status", str, enum=["pending", "approved", "rejected", "withdrawn"],
                                    description="Only requests in this state")


def _requests_page(view, requests):
    return view.paginated(requests, serialize=lambda row: s.serialize_alias_request(
        row, selectors.alias_request_check(row)))


class ProtectedAliasListView(RegistryView):
    @extend_schema(responses=s.ProtectedAliasSerializer(many=True),
                   summary="Alias names protected in this context: moving one needs an admin or an approved request")
    def get(self, request, ctx):
        return self.paginated(selectors.protected_alias_list(self.whole_context(ctx)), s.ProtectedAliasSerializer)

    @extend_schema(request=s.ProtectedAliasSerializer, responses={201: s.ProtectedAliasSerializer, **ERRORS},
                   summary="Protect an alias name in this context (admins)")
    @requires(Perm.MANAGE_CONTEXT)
    def post(self, request, ctx):
        context = self.context(ctx)
        data = self.input(s.ProtectedAliasSerializer)
        row = services.protected_alias_add(actor=request.user, context=context, name=data["name"])
        return Response(s.ProtectedAliasSerializer(row).data, status=status.HTTP_201_CREATED)


class ProtectedAliasDetailView(RegistryView):
    @extend_schema(responses={204: None, **ERRORS}, summary="Stop protecting an alias name (admins)")
    @requires(Perm.MANAGE_CONTEXT)
    def delete(self, request, ctx, name):
        services.protected_alias_remove(actor=request.user, context=self.context(ctx), name=name)
        return Response(status=status.HTTP_204_NO_CONTENT)


class ContextAliasRequestListView(RegistryView):
    @extend_schema(responses=s.AliasRequestSerializer(many=True), parameters=[STATUS_PARAMETER],
                   summary="Move requests of protected aliases in every model of this context, newest first")
    def get(self, request, ctx):
        context = self.whole_context(ctx)
        return _requests_page(self, selectors.alias_request_list(
            context=context, status=request.query_params.get("status", "")))


class AliasRequestListView(RegistryView):
    @extend_schema(responses=s.AliasRequestSerializer(many=True), parameters=[STATUS_PARAMETER],
                   summary="Move requests of the model's protected aliases, newest first")
    def get(self, request, model_id):
        return _requests_page(self, selectors.alias_request_list(
            model=self.model(model_id), status=request.query_params.get("status", "")))


class AliasRequestDetailView(RegistryView):
    def _detail(self, model, request_id):
        request = selectors.alias_request_get(model, request_id)
        return s.serialize_alias_request(request, selectors.alias_request_check(request))

    @extend_schema(responses=s.AliasRequestSerializer,
                   summary="A move request, with the signature check of the move it asks for")
    def get(self, request, model_id, request_id):
        return Response(self._detail(self.model(model_id), request_id))


# A POST that acts on one move request (approve, reject, withdraw): the service is given the
# request, and the answer is the request's detail after it. (A comment, not a docstring: the
# OpenAPI document would show a view's docstring as each operation's description.)
class AliasRequestDecisionView(AliasRequestDetailView):
    http_method_names = ["post", "options"]

    def decide(self, request, model_id, request_id, service, *, with_comment: bool):
        model = self.model(model_id)
        fields = {"comment": self.input(s.AliasRequestDecisionSerializer)["comment"]} if with_comment else {}
        service(actor=request.user, model=model, request=selectors.alias_request_get(model, request_id), **fields)
        return Response(self._detail(model, request_id))


class AliasRequestApproveView(AliasRequestDecisionView):
    @extend_schema(request=s.AliasRequestDecisionSerializer, responses={200: s.AliasRequestSerializer, **ERRORS},
                   summary="Approve a move request (a publisher other than its author, or an admin): the move "
                           "happens now, checked as a direct move is; 409 if the alias moved since")
    @requires(Perm.PUBLISH_VERSION)
    def post(self, request, model_id, request_id):
        return self.decide(request, model_id, request_id, services.alias_request_approve, with_comment=True)


class AliasRequestRejectView(AliasRequestDecisionView):
    @extend_schema(request=s.AliasRequestDecisionSerializer, responses={200: s.AliasRequestSerializer, **ERRORS},
                   summary="Reject a move request (a publisher other than its author, or an admin)")
    @requires(Perm.PUBLISH_VERSION)
    def post(self, request, model_id, request_id):
        return self.decide(request, model_id, request_id, services.alias_request_reject, with_comment=True)


class AliasRequestWithdrawView(AliasRequestDecisionView):
    @extend_schema(request=None, responses={200: s.AliasRequestSerializer, **ERRORS},
                   summary="Withdraw your own move request")
    @requires(Perm.PUBLISH_VERSION)
    def post(self, request, model_id, request_id):
        return self.decide(request, model_id, request_id, services.alias_request_withdraw, with_comment=False)


# --- API tokens -------------------------------------------------------------------------

class TokenListView(RegistryView):
    @extend_schema(responses=s.TokenSerializer(many=True), summary="Your API tokens, with their scope and last use")
    def get(self, request):
        return self.paginated(selectors.token_list(request.user), s.TokenSerializer)

    @extend_schema(request=s.TokenCreateSerializer, responses={201: s.TokenCreatedSerializer, **ERRORS},
                   summary="Create a token (shown once), optionally limited to contexts, models and permissions; "
                           "not with a read-only or scoped token")
    @unrestricted_only
    def post(self, request):
        data = self.input(s.TokenCreateSerializer)
        token, plain = services.token_create(actor=request.user, user=request.user, **data)
        shown = selectors.token_get(request.user, token.pk)
        return Response({**s.TokenSerializer(shown).data, "token": plain}, status=status.HTTP_201_CREATED)


class TokenDetailView(RegistryView):
    @extend_schema(responses=s.TokenSerializer, summary="One of your tokens")
    def get(self, request, token_id):
        return Response(s.TokenSerializer(selectors.token_get(request.user, token_id)).data)

    @extend_schema(responses={204: None, **ERRORS}, summary="Revoke one of your tokens")
    @unrestricted_only
    def delete(self, request, token_id):
        services.token_revoke(actor=request.user, token=selectors.token_get(request.user, token_id))
        return Response(status=status.HTTP_204_NO_CONTENT)


class ContextTokenListView(RegistryView):
    @extend_schema(responses=s.TokenSerializer(many=True),
                   summary="Live tokens of the context's members that can act in it (admins)")
    @requires(Perm.MANAGE_CONTEXT)
    def get(self, request, ctx):
        return self.paginated(selectors.context_token_list(self.context(ctx)), s.TokenSerializer)


class ContextTokenDetailView(RegistryView):
    @extend_schema(responses={204: None, **ERRORS}, summary="Revoke a token that can act in this context (admins)")
    @requires(Perm.MANAGE_CONTEXT)
    def delete(self, request, ctx, token_id):
        context = self.context(ctx)
        services.token_revoke(actor=request.user, token=selectors.context_token_get(context, token_id),
                              context=context)
        return Response(status=status.HTTP_204_NO_CONTENT)


# --- training records -------------------------------------------------------------------

class RecordListView(RegistryView):
    pagination_class = CursorPagination

    @extend_schema(responses=s.RecordSerializer(many=True),
                   parameters=[OpenApiParameter("search", str, description="Words in the name or URI")])
    def get(self, request, ctx):
        context = self.whole_context(ctx)
        return self.paginated(selectors.record_list(context, search=request.query_params.get("search", "")),
                              s.RecordSerializer)

    @extend_schema(request=s.RecordSerializer, responses={201: s.RecordSerializer, **ERRORS})
    @requires(Perm.EDIT_MODEL)
    def post(self, request, ctx):
        context = self.context(ctx)
        data = self.input(s.RecordSerializer)
        record = services.record_create(actor=request.user, context=context, **data)
        return Response(s.RecordSerializer(selectors.record_get(request.user, record.pk)).data, status=201)


class RecordDetailView(RegistryView):
    def _detail(self, record):
        versions = list(selectors.record_versions(record))
        return s.RecordDetailSerializer(record, context={"versions": versions}).data

    @extend_schema(responses=s.RecordDetailSerializer, summary="A training record and every version trained on it")
    def get(self, request, record_id):
        return Response(self._detail(self.record(record_id)))

    @extend_schema(request=s.RecordUpdateSerializer, responses={200: s.RecordDetailSerializer, **ERRORS})
    @requires(Perm.EDIT_MODEL)
    def patch(self, request, record_id):
        record = self.record(record_id)
        services.record_update(actor=request.user, record=record, **self.input(s.RecordUpdateSerializer, partial=True))
        return Response(self._detail(selectors.record_get(request.user, record_id)))

    @extend_schema(responses={204: None, **ERRORS})
    @requires(Perm.DELETE_MODEL)
    def delete(self, request, record_id):
        services.record_delete(actor=request.user, record=self.record(record_id))
        return Response(status=status.HTTP_204_NO_CONTENT)
