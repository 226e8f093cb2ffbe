"""Site staff create contexts and groups here (SPEC §1); tokens are only listed/revoked."""

from django.contrib import admin

from registry.models import ApiToken, AuditEvent, Context, Membership


class MembershipInline(admin.TabularInline):
    model = Membership
    extra = 1
    autocomplete_fields = ["user", "group"]


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
