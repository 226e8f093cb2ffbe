from registry.models.audit import AuditEvent
from registry.models.catalog import Alias, AliasMove, Model, Tag, Version, VersionStatus
from registry.models.contexts import ApiToken, Context, Membership, Role
from registry.models.files import Format, FormatKind, FormatStatus, UploadSession
from registry.models.lineage import Metric, ModelMetric, TrainingRecord
from registry.models.trust import TrustedImport

__all__ = [
    "Alias",
    "AliasMove",
    "ApiToken",
    "AuditEvent",
    "Context",
    "Format",
    "FormatKind",
    "FormatStatus",
    "Membership",
    "Metric",
    "Model",
    "ModelMetric",
    "Role",
    "Tag",
    "TrainingRecord",
    "TrustedImport",
    "UploadSession",
    "Version",
    "VersionStatus",
]
