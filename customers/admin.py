from django.contrib import admin, messages

from customers.models import ApiKey, Customer
from customers.services import api_key_create, api_key_revoke, api_key_rotate


class ApiKeyInline(admin.TabularInline):
    model = ApiKey
    extra = 0
    can_delete = False
    fields = ("prefix", "name", "scopes", "expires_at", "last_used_at", "revoked_at")
    readonly_fields = ("prefix", "last_used_at", "revoked_at")
    show_change_link = True

    def has_add_permission(self, request, obj=None):
        return False  # keys are issued by the action, which shows the secret once


@admin.register(Customer)
class CustomerAdmin(admin.ModelAdmin):
    list_display = ("email", "name", "plan", "status", "subscription_status", "created_at")
    list_filter = ("status", "plan", "subscription_status", "has_payment_method")
    search_fields = ("email", "name", "stripe_customer__id")
    autocomplete_fields = ("user",)
    raw_id_fields = ("stripe_customer",)
    readonly_fields = ("created_at", "updated_at")
    inlines = [ApiKeyInline]
    actions = ["issue_api_key"]

    @admin.action(description="Issue a new API key (shown once)")
    def issue_api_key(self, request, queryset):
        for customer in queryset:
            issued = api_key_create(customer=customer, name="admin")
            self.message_user(
                request,
                f"{customer.email}: {issued.secret} — copy it now, it is not shown again.",
                messages.WARNING,
            )


@admin.register(ApiKey)
class ApiKeyAdmin(admin.ModelAdmin):
    list_display = (
        "prefix",
        "name",
        "customer",
        "created_at",
        "last_used_at",
        "expires_at",
        "revoked_at",
    )
    list_filter = ("revoked_at", "expires_at")
    search_fields = ("prefix", "name", "customer__email")
    raw_id_fields = ("customer",)
    readonly_fields = ("prefix", "secret_hash", "last_used_at", "revoked_at", "created_at")
    actions = ["revoke", "rotate"]

    def has_add_permission(self, request):
        return False  # issued from the customer page, so the secret can be shown once

    @admin.action(description="Revoke the selected keys")
    def revoke(self, request, queryset):
        for key in queryset:
            api_key_revoke(api_key=key)
        self.message_user(request, f"Revoked {queryset.count()} key(s).")

    @admin.action(description="Rotate the selected keys (new secrets shown once)")
    def rotate(self, request, queryset):
        for key in queryset:
            issued = api_key_rotate(api_key=key)
            self.message_user(
                request,
                f"{key.prefix} replaced by {issued.secret} — copy it now, it is not shown again.",
                messages.WARNING,
            )
