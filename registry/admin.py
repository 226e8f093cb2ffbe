"""Site staff create contexts and groups here (SPEC §1); tokens are only listed/revoked."""

from django.contrib import admin

from registry.models import ApiToken, AuditEvent, Context, Membership, SsoIdentity


class MembershipInline(admin.TabularInline):
    model = Membership
    extra = 1
    autocomplete_fields = ["user", "group"]
    # Rows added here are granted by hand; those of single sign-on rules are the rules' to change.
    readonly_fields = ["source", "sso_rule"]


@admin.register(SsoIdentity)
class SsoIdentityAdmin(admin.ModelAdmin):
    """Which account a provider's subject signs in as. Staff may point one at an existing local
    account (the first sign-in made a new one, `name-2`, rather than take that account over)."""

    list_display = ["subject", "issuer", "user", "claim_values", "last_sign_in_at"]
    list_select_related = ["user"]
    search_fields = ["subject", "user__username"]
    autocomplete_fields = ["user"]
    readonly_fields = ["issuer", "subject", "claim_values", "created_at", "last_sign_in_at"]

    def has_add_permission(self, request):
        return False  # made by the first sign-in


@admin.register(Context)
class ContextAdmin(admin.ModelAdmin):
    list_display = ["slug", "name", "created_at"]
    search_fields = ["slug", "name"]
    inlines = [MembershipInline]


@admin.register(ApiToken)
class ApiTokenAdmin(admin.ModelAdmin):
    list_display = ["prefix", "user", "name", "read_only", "created_at", "expires_at", "revoked_at", "last_used_at"]
    list_select_related = ["user"]
    readonly_fields = ["user", "prefix", "key_hash", "created_at", "last_used_at"]
    search_fields = ["prefix", "user__username", "name"]

    def has_add_permission(self, request):
        return False  # tokens are created by their owner (shown once) or by manage.py token_create


@admin.register(AuditEvent)
class AuditEventAdmin(admin.ModelAdmin):
    list_display = ["created_at", "context", "actor_name", "action", "object_repr", "summary"]
    list_select_related = ["context"]
    list_filter = ["action"]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False
