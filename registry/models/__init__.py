from registry.models.attachments import ModelAttachment
from registry.models.audit import AuditEvent
from registry.models.catalog import Alias, AliasMove, Model, Tag, Version, VersionStatus
from registry.models.contexts import ApiToken, Context, Membership, MembershipSource, Role, TokenReach
from registry.models.guards import AliasMoveRequest, MoveAction, ProtectedAlias, RequestStatus
from registry.models.files import Format, FormatKind, FormatStatus, UploadSession
from registry.models.lineage import Metric, ModelMetric, TrainingRecord
from registry.models.sso import SsoIdentity, SsoRule
from registry.models.trust import TrustedImport
from registry.models.webhooks import DeliveryStatus, EventType, Webhook, WebhookAttempt, WebhookDelivery

__all__ = [
    "Alias",
    "AliasMove",
    "AliasMoveRequest",
    "ApiToken",
    "DeliveryStatus",
    "EventType",
    "AuditEvent",
    "Context",
    "Format",
    "FormatKind",
    "FormatStatus",
    "Membership",
    "MembershipSource",
    "Metric",
    "Model",
    "ModelAttachment",
    "ModelMetric",
    "MoveAction",
    "ProtectedAlias",
    "RequestStatus",
    "Role",
    "SsoIdentity",
    "SsoRule",
    "Tag",
    "TokenReach",
    "TrainingRecord",
    "TrustedImport",
    "UploadSession",
    "Version",
    "VersionStatus",
    "Webhook",
    "WebhookAttempt",
    "WebhookDelivery",
]
