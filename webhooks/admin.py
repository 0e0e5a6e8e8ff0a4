from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest

from webhooks.models import CheckoutGrant, EventProcessing
from webhooks.services import event_retry


@admin.register(EventProcessing)
class EventProcessingAdmin(admin.ModelAdmin):
    list_display = [
        "event_id",
        "type",
        "status",
        "attempts",
        "result",
        "next_attempt_at",
        "created_at",
    ]
    list_filter = ["status", "type"]
    search_fields = ["event_id", "type", "last_error", "result"]
    readonly_fields = [f.name for f in EventProcessing._meta.fields]
    date_hierarchy = "created_at"
    actions = ["retry"]

    @admin.action(description="Retry the selected events now")
    def retry(self, request: HttpRequest, queryset: QuerySet[EventProcessing]) -> None:
        """Queue the selected events again (finished ones are left alone)."""
        queued = sum(event_retry(processing=row) for row in queryset)
        messages.info(request, f"{queued} of {queryset.count()} events queued again.")

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False


@admin.register(CheckoutGrant)
class CheckoutGrantAdmin(admin.ModelAdmin):
    list_display = ["session_id", "customer", "pack", "credits", "payment_intent_id", "created_at"]
    search_fields = ["session_id", "payment_intent_id", "customer__email"]
    readonly_fields = [f.name for f in CheckoutGrant._meta.fields]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False
