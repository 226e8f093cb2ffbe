from registry.models.audit import AuditEvent
from registry.models.catalog import Alias, AliasMove, Model, Tag, Version, VersionStatus
from registry.models.contexts import ApiToken, Context, Membership, Role, TokenReach
from registry.models.guards import AliasMoveRequest, MoveAction, ProtectedAlias, RequestStatus
from registry.models.files import Format, FormatKind, FormatStatus, UploadSession
from registry.models.lineage import Metric, TrainingRecord
from registry.models.trust import TrustedImport

__all__ = [
    "Alias",
    "AliasMove",
    "AliasMoveRequest",
    "ApiToken",
    "AuditEvent",
    "Context",
    "Format",
    "FormatKind",
    "FormatStatus",
    "Membership",
    "Metric",
    "Model",
    "MoveAction",
    "ProtectedAlias",
    "RequestStatus",
    "Role",
    "Tag",
    "TokenReach",
    "TrainingRecord",
    "TrustedImport",
    "UploadSession",
    "Version",
    "VersionStatus",
]
