"""Every write a user can make, once. The API and the dashboard both call these.

Conventions: keyword-only arguments with `actor` first (`None` is the operator running a
manage.py command); `@transaction.atomic`; validate, write with `update_fields`, record an
audit event, and queue follow-up work with `transaction.on_commit`. Who may call them is
decided before, once per request, by the view that does (registry/permissions.py says where).
"""

from registry.services.attachments import attachment_delete, attachment_upload
from registry.services.aliases import (
    alias_delete,
    alias_request_approve,
    alias_request_reject,
    alias_request_withdraw,
    alias_rollback,
    alias_set,
    protected_alias_add,
    protected_alias_remove,
)
from registry.services.contexts import (
    context_create,
    membership_remove,
    membership_set,
    token_create,
    token_revoke,
)
from registry.services.formats import (
    format_create,
    format_delete,
    format_download_gate,
    format_update,
    format_upload,
)
from registry.services.lineage import metrics_log, model_metrics_log, record_create, record_delete, record_update
from registry.services.models import model_create, model_delete, model_update
from registry.services.sso import sso_rule_create, sso_rule_delete, sso_sign_in
from registry.services.tamper import tamper_report
from registry.services.trusted_imports import format_imports_approve, trusted_import_revoke, trusted_imports_add
from registry.services.webhooks import (
    webhook_create,
    webhook_delete,
    webhook_secret_rotate,
    webhook_test,
    webhook_update,
)
from registry.services.versions import version_create, version_delete, version_publish, version_update

__all__ = [
    "attachment_delete",
    "attachment_upload",
    "alias_delete",
    "alias_request_approve",
    "alias_request_reject",
    "alias_request_withdraw",
    "alias_rollback",
    "alias_set",
    "context_create",
    "format_create",
    "format_delete",
    "format_download_gate",
    "format_imports_approve",
    "format_update",
    "format_upload",
    "membership_remove",
    "membership_set",
    "metrics_log",
    "model_metrics_log",
    "model_create",
    "model_delete",
    "model_update",
    "protected_alias_add",
    "protected_alias_remove",
    "record_create",
    "record_delete",
    "record_update",
    "sso_rule_create",
    "sso_rule_delete",
    "sso_sign_in",
    "tamper_report",
    "token_create",
    "token_revoke",
    "trusted_import_revoke",
    "trusted_imports_add",
    "version_create",
    "version_delete",
    "version_publish",
    "version_update",
    "webhook_create",
    "webhook_delete",
    "webhook_secret_rotate",
    "webhook_test",
    "webhook_update",
]
