import uuid

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import ValidationError
from django.db.models import Q
from django.template.response import TemplateResponse
from django.utils import timezone

from billing.models import (
    BudgetCounter,
    CreditAccount,
    CreditLot,
    CreditPack,
    Hold,
    LedgerEntry,
    MeterReconciliation,
    OutboxMessage,
    Payment,
    PeriodCounter,
    Plan,
    Tool,
    ToolPeriodCounter,
    ToolPrice,
    UpstreamServer,
    UsageRecord,
)
from billing.services.calls import holds_abandon
from billing.services.ledger import credit_grant, usage_refund
from billing.services.outbox import outbox_requeue
from billing.services.pricing import tiers_validate, tool_price_set
from billing.services.stripe_catalog import credit_pack_stripe_sync, plan_stripe_sync
from customers.admin import CustomerAdmin
from customers.models import Customer
from mcpbilling.errors import ApplicationError


class ReadOnlyAdmin(admin.ModelAdmin):
    """Rows written only by services: viewable, never edited or deleted here."""

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


@admin.register(Plan)
class PlanAdmin(admin.ModelAdmin):
    list_display = ("slug", "name", "billing_model", "currency", "interval", "active", "public")
    list_filter = ("billing_model", "active", "public", "interval", "currency")
    search_fields = ("slug", "name", "stripe_price_id")
    prepopulated_fields = {"slug": ("name",)}
    fieldsets = (
        (
            None,
            {
                "fields": (
                    "slug",
                    "name",
                    "description",
                    "billing_model",
                    "currency",
                    "interval",
                    "active",
                    "public",
                )
            },
        ),
        ("Subscription", {"fields": ("price_cents", "included_calls", "overage")}),
        ("Freemium", {"fields": ("free_calls", "free_tier_action", "upgrade_plan")}),
        (
            "Pay as you go",
            {"fields": ("exposure_limit_microcents", "collection_threshold_microcents")},
        ),
        ("Credits", {"fields": ("auto_topup_threshold_credits", "auto_topup_pack")}),
        (
            "Limits",
            {
                "fields": (
                    "daily_budget_microcents",
                    "rate_limit_per_minute",
                    "tool_rate_limit_per_minute",
                )
            },
        ),
        ("Stripe", {"fields": ("stripe_price_id", "stripe_meter_event_name")}),
    )
    actions = ["stripe_sync"]

    @admin.action(description="Create or update the Stripe product and prices")
    def stripe_sync(self, request, queryset):
        for plan in queryset:
            synced = plan_stripe_sync(plan=plan)
            self.message_user(request, f"{plan.slug}: price {synced.price_id or '(not sold)'}")


@admin.register(CreditPack)
class CreditPackAdmin(admin.ModelAdmin):
    list_display = (
        "slug",
        "name",
        "credits",
        "price_cents",
        "currency",
        "expires_after_days",
        "active",
    )
    list_filter = ("active", "currency")
    search_fields = ("slug", "name", "stripe_price_id")
    actions = ["stripe_sync"]

    @admin.action(description="Create or update the Stripe product and price")
    def stripe_sync(self, request, queryset):
        for pack in queryset:
            synced = credit_pack_stripe_sync(pack=pack)
            self.message_user(request, f"{pack.slug}: price {synced.price_id}")


class ToolPriceForm(forms.ModelForm):
    class Meta:
        model = ToolPrice
        fields = (
            "tool",
            "currency",
            "unit_amount_microcents",
            "credits",
            "tiers",
            "charge_failed_calls",
        )

    def clean_tiers(self):
        try:
            return tiers_validate(self.cleaned_data.get("tiers") or [])
        except ApplicationError as exc:
            raise ValidationError(exc.message) from exc


@admin.register(ToolPrice)
class ToolPriceAdmin(admin.ModelAdmin):
    """Prices are versions: adding writes a new version, existing ones are read-only."""

    form = ToolPriceForm
    list_display = (
        "tool",
        "version",
        "unit_amount_microcents",
        "credits",
        "currency",
        "charge_failed_calls",
        "created_at",
    )
    list_filter = ("currency", "charge_failed_calls")
    search_fields = ("tool__name",)
    readonly_fields = ("version", "created_at")

    def has_change_permission(self, request, obj=None):
        return obj is None

    def has_delete_permission(self, request, obj=None):
        return False

    def save_model(self, request, obj, form, change):
        data = form.cleaned_data
        price = tool_price_set(
            tool=data["tool"],
            unit_amount_microcents=data["unit_amount_microcents"],
            credits=data["credits"],
            currency=data["currency"],
            tiers=data["tiers"],
            charge_failed_calls=data["charge_failed_calls"],
        )
        obj.pk, obj.version = price.pk, price.version


class ToolPriceInline(admin.TabularInline):
    model = ToolPrice
    extra = 0
    can_delete = False
    fields = (
        "version",
        "unit_amount_microcents",
        "credits",
        "currency",
        "tiers",
        "charge_failed_calls",
        "created_at",
    )
    readonly_fields = fields
    ordering = ("-version",)

    def has_add_permission(self, request, obj=None):
        return False


@admin.register(Tool)
class ToolAdmin(admin.ModelAdmin):
    list_display = ("name", "source", "upstream", "is_free", "enabled", "timeout_s")
    list_filter = ("source", "enabled", "is_free", "upstream")
    search_fields = ("name", "title", "description", "upstream_name")
    inlines = [ToolPriceInline]


@admin.register(UpstreamServer)
class UpstreamServerAdmin(admin.ModelAdmin):
    list_display = ("name", "transport", "url", "command", "tool_prefix", "enabled")
    list_filter = ("transport", "enabled")
    search_fields = ("name", "url", "command")


@admin.register(CreditAccount)
class CreditAccountAdmin(ReadOnlyAdmin):
    list_display = (
        "customer",
        "balance_credits",
        "held_credits",
        "held_microcents",
        "unbilled_microcents",
        "updated_at",
    )
    search_fields = ("customer__email",)


@admin.register(LedgerEntry)
class LedgerEntryAdmin(ReadOnlyAdmin):
    list_display = (
        "created_at",
        "account",
        "kind",
        "amount_credits",
        "balance_after_credits",
        "idempotency_key",
    )
    list_filter = ("kind",)
    search_fields = ("idempotency_key", "account__customer__email", "description")
    date_hierarchy = "created_at"


@admin.register(CreditLot)
class CreditLotAdmin(ReadOnlyAdmin):
    list_display = ("account", "granted_credits", "remaining_credits", "expires_at", "created_at")
    list_filter = ("expires_at",)
    search_fields = ("account__customer__email",)


@admin.register(Hold)
class HoldAdmin(ReadOnlyAdmin):
    list_display = (
        "id",
        "customer",
        "tool",
        "path",
        "status",
        "spare",
        "credits",
        "amount_microcents",
        "created_at",
        "expires_at",
    )
    list_filter = ("status", "path", "spare")
    search_fields = ("customer__email", "tool__name", "idempotency_key")
    actions = ["release"]

    @admin.action(description="Release the selected open holds (charge nothing)")
    def release(self, request, queryset):
        holds_abandon(queryset, outcome=UsageRecord.Outcome.CANCELLED)
        self.message_user(request, "Released (spares returned).")


@admin.register(UsageRecord)
class UsageRecordAdmin(ReadOnlyAdmin):
    list_display = (
        "created_at",
        "customer",
        "tool",
        "path",
        "outcome",
        "charged",
        "amount_microcents",
        "credits",
        "duration_ms",
    )
    list_filter = ("outcome", "charged", "path", "tool")
    search_fields = ("id", "customer__email", "tool__name", "idempotency_key")
    date_hierarchy = "created_at"
    actions = ["refund"]

    @admin.action(description="Refund the selected calls")
    def refund(self, request, queryset):
        done = 0
        for usage in queryset.filter(charged=True, refunded_at__isnull=True):
            try:
                usage_refund(usage_id=usage.pk, reason=f"Refunded by {request.user}")
                done += 1
            except ApplicationError as exc:
                self.message_user(request, f"{usage.pk}: {exc.message}", messages.ERROR)
        self.message_user(request, f"Refunded {done} call(s).")


@admin.register(OutboxMessage)
class OutboxMessageAdmin(ReadOnlyAdmin):
    list_display = (
        "created_at",
        "kind",
        "identifier",
        "status",
        "attempts",
        "next_attempt_at",
        "sent_at",
    )
    list_filter = ("kind", "status")
    search_fields = ("identifier", "customer__email")
    actions = ["requeue"]

    @admin.action(description="Send again (dead or failed rows)")
    def requeue(self, request, queryset):
        count = outbox_requeue(ids=list(queryset.values_list("pk", flat=True)))
        self.message_user(request, f"Queued {count} row(s) again.", messages.SUCCESS)


@admin.register(Payment)
class PaymentAdmin(ReadOnlyAdmin):
    list_display = (
        "created_at",
        "customer",
        "purpose",
        "status",
        "amount_cents",
        "covered_microcents",
        "failure_code",
        "stripe_payment_intent_id",
    )
    list_filter = ("purpose", "status", "failure_code")
    search_fields = ("customer__email", "stripe_payment_intent_id")


class DifferenceFilter(admin.SimpleListFilter):
    title = "difference"
    parameter_name = "difference"
    CHOICES = {
        "any": ("Stripe differs", ~Q(difference=0)),
        "missing": ("Stripe has less", Q(difference__lt=0)),
        "extra": ("Stripe has more", Q(difference__gt=0)),
        "none": ("Agrees", Q(difference=0)),
    }

    def lookups(self, request, model_admin):
        return [(value, label) for value, (label, _) in self.CHOICES.items()]

    def queryset(self, request, queryset):
        choice = self.CHOICES.get(self.value())
        return queryset.filter(choice[1]) if choice else queryset


@admin.register(MeterReconciliation)
class MeterReconciliationAdmin(ReadOnlyAdmin):
    list_display = (
        "window_start",
        "window_end",
        "customer",
        "event_name",
        "local_total",
        "stripe_total",
        "difference",
        "checked_at",
    )
    list_filter = (DifferenceFilter, "event_name")
    search_fields = ("customer__email", "event_name")
    date_hierarchy = "window_start"


@admin.register(PeriodCounter)
class PeriodCounterAdmin(ReadOnlyAdmin):
    list_display = ("customer", "period_start", "included_calls_used", "free_calls_used")
    search_fields = ("customer__email",)


@admin.register(ToolPeriodCounter)
class ToolPeriodCounterAdmin(ReadOnlyAdmin):
    list_display = ("customer", "tool", "period_start", "calls")
    search_fields = ("customer__email", "tool__name")


@admin.register(BudgetCounter)
class BudgetCounterAdmin(ReadOnlyAdmin):
    list_display = ("customer", "api_key", "day", "spent_microcents")
    search_fields = ("customer__email",)
    list_filter = ("day",)


# --- the customer page gains billing's actions -------------------------------------------


class GrantCreditsForm(forms.Form):
    credits = forms.IntegerField(min_value=1, max_value=10**12, help_text="Whole credits each.")
    reason = forms.CharField(
        max_length=255, help_text="Recorded in the ledger, e.g. 'Goodwill for ticket 4521'."
    )
    expires_at = forms.DateTimeField(
        required=False, help_text="Optional, UTC (YYYY-MM-DD HH:MM); empty: never expires."
    )
    # Drawn when the form is shown: submitting it twice grants once.
    grant_token = forms.UUIDField(widget=forms.HiddenInput)

    def clean_expires_at(self):
        value = self.cleaned_data["expires_at"]
        if value is not None and value <= timezone.now():
            raise ValidationError("An expiry must be in the future.")
        return value


class BillingCustomerAdmin(CustomerAdmin):
    """The customers' admin of ``customers``, with their balance and a "grant credits" action."""

    list_display = (*CustomerAdmin.list_display, "balance")
    list_select_related = ("plan", "credit_account")
    actions = [*CustomerAdmin.actions, "grant_credits"]

    @admin.display(description="credits", ordering="credit_account__balance_credits")
    def balance(self, customer) -> int:
        return customer.credit_account.balance_credits

    def has_grant_credits_permission(self, request) -> bool:
        return request.user.has_perm("billing.add_ledgerentry")

    @admin.action(description="Grant credits (with a reason)", permissions=["grant_credits"])
    def grant_credits(self, request, queryset):
        customers = list(queryset.select_related("credit_account"))
        if "apply" in request.POST:
            form = GrantCreditsForm(request.POST)
            if form.is_valid():
                data = form.cleaned_data
                for customer in customers:
                    credit_grant(
                        customer_id=customer.pk,
                        credits=data["credits"],
                        idempotency_key=f"admin-grant:{data['grant_token']}:{customer.pk}",
                        description=f"{data['reason']} (by {request.user.get_username()})",
                        expires_at=data["expires_at"],
                    )
                self.message_user(
                    request,
                    f"Granted {data['credits']} credits to {len(customers)} customer(s).",
                    messages.SUCCESS,
                )
                return None
        else:
            form = GrantCreditsForm(initial={"grant_token": uuid.uuid4()})
        return TemplateResponse(
            request,
            "admin/customers/grant_credits.html",
            {
                **self.admin_site.each_context(request),
                "title": "Grant credits",
                "opts": self.model._meta,
                "customers": customers,
                "form": form,
                "action_checkbox_name": admin.helpers.ACTION_CHECKBOX_NAME,
            },
        )


admin.site.unregister(Customer)
admin.site.register(Customer, BillingCustomerAdmin)
