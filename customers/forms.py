"""The API-key form on /keys/."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta
from decimal import Decimal

from django import forms
from django.utils import timezone

from mcpbilling.formats import money_to_microcents

MAX_DAILY_BUDGET = Decimal("1000000")


class ApiKeyForm(forms.Form):
    name = forms.CharField(
        max_length=100,
        help_text="What uses this key, e.g. “production agent” or “laptop”.",
    )
    expires_on = forms.DateField(
        required=False,
        label="Expires on",
        help_text="Optional. The key stops working at the end of this day (UTC).",
        widget=forms.DateInput(attrs={"type": "date"}),
    )
    daily_budget = forms.DecimalField(
        required=False,
        label="Daily spending cap",
        min_value=Decimal("0.01"),
        max_value=MAX_DAILY_BUDGET,
        decimal_places=6,
        help_text="Optional, in your plan's currency. Paid calls past it are refused until "
        "the next UTC day.",
        widget=forms.NumberInput(attrs={"step": "0.01", "inputmode": "decimal"}),
    )

    def __init__(self, *args, currency: str = "usd", **kwargs):
        super().__init__(*args, **kwargs)
        self.currency = currency
        self.fields["daily_budget"].label = f"Daily spending cap ({currency.upper()})"

    def clean_name(self) -> str:
        name = self.cleaned_data["name"].strip()
        if not name:
            raise forms.ValidationError("Give the key a name.")
        return name

    def clean_expires_on(self):
        day = self.cleaned_data.get("expires_on")
        if day is not None and day < timezone.now().date():
            raise forms.ValidationError("Choose today or a later day.")
        return day

    @property
    def expires_at(self) -> datetime | None:
        day = self.cleaned_data.get("expires_on")
        return datetime.combine(day + timedelta(days=1), time.min, tzinfo=UTC) if day else None

    @property
    def daily_budget_microcents(self) -> int | None:
        budget = self.cleaned_data.get("daily_budget")
        return None if budget is None else money_to_microcents(budget, self.currency)
