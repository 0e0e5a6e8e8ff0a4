"""The usage filters on /usage/ and /usage/export.csv."""

from __future__ import annotations

from django import forms

from billing.models import UsageRecord
from billing.selectors import usage_filter_tools
from customers.models import ApiKey


class UsageFilterForm(forms.Form):
    """Filters by tool, key, outcome and date; a key that is not the customer's is refused."""

    tool = forms.ChoiceField(required=False)
    api_key = forms.ChoiceField(required=False, label="API key")
    outcome = forms.ChoiceField(
        required=False, choices=[("", "Any outcome"), *UsageRecord.Outcome.choices]
    )
    created_after = forms.DateField(
        required=False, label="From", widget=forms.DateInput(attrs={"type": "date"})
    )
    created_before = forms.DateField(
        required=False, label="To", widget=forms.DateInput(attrs={"type": "date"})
    )

    def __init__(self, *args, keys: list[ApiKey], **kwargs):
        super().__init__(*args, **kwargs)
        self.keys = {str(key.pk): key for key in keys}
        self.tools = {tool.name: tool for tool in usage_filter_tools()}
        self.fields["tool"].choices = [("", "Any tool"), *((n, n) for n in self.tools)]
        self.fields["api_key"].choices = [
            ("", "Any key"),
            *((pk, f"{key.name} ({key.prefix}…)") for pk, key in self.keys.items()),
        ]

    def clean(self):
        cleaned = super().clean()
        after, before = cleaned.get("created_after"), cleaned.get("created_before")
        if after and before and before < after:
            self.add_error("created_before", "Choose a day on or after the “From” day.")
        return cleaned

    def filters(self) -> dict:
        """The valid filters as ``usage_list`` takes them."""
        data = self.cleaned_data
        return {
            "tool": self.tools.get(data.get("tool") or ""),
            "api_key": self.keys.get(data.get("api_key") or ""),
            "outcome": data.get("outcome") or "",
            "created_after": data.get("created_after"),
            "created_before": data.get("created_before"),
        }
