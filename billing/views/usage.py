"""The customer's calls: the filtered list, one call's receipt, and the CSV download."""

from __future__ import annotations

import csv
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass

from asgiref.sync import sync_to_async
from django.core.handlers.asgi import ASGIRequest
from django.http import Http404, HttpRequest, HttpResponse, StreamingHttpResponse
from django.shortcuts import render
from django.utils import timezone
from django.views.decorators.http import require_GET

from billing.forms import UsageFilterForm
from billing.models import UsageRecord
from billing.selectors import usage_batch, usage_get, usage_ledger_entry, usage_list
from billing.services.pricing import microcents_to_decimal
from customers.access import customer_required
from customers.selectors import api_key_list

PAGE_SIZE = 50
EXPORT_BATCH = 2000
CSV_COLUMNS = [
    "receipt_id",
    "created_at",
    "tool",
    "api_key_prefix",
    "api_key_name",
    "outcome",
    "charged",
    "paid_by",
    "price_version",
    "amount_decimal",
    "amount_microcents",
    "currency",
    "credits",
    "duration_ms",
    "refunded_at",
]


@dataclass(frozen=True)
class Page:
    """One page of the list without counting all the rows (a customer may have millions)."""

    rows: list[UsageRecord]
    number: int
    has_next: bool

    @property
    def has_previous(self) -> bool:
        return self.number > 1

    @property
    def has_other_pages(self) -> bool:
        return self.has_next or self.has_previous

    def next_page_number(self) -> int:
        return self.number + 1

    def previous_page_number(self) -> int:
        return self.number - 1


def _page_number(request: HttpRequest) -> int:
    try:
        return max(1, int(request.GET.get("page", "1")))
    except ValueError:
        return 1


def _filter_form(request: HttpRequest) -> UsageFilterForm:
    """The filters of the request; a key id that is not the customer's is a 404."""
    keys = api_key_list(customer=request.customer)
    form = UsageFilterForm(request.GET or None, keys=keys)
    wanted_key = request.GET.get("api_key", "")
    if wanted_key and wanted_key not in form.keys:
        raise Http404("No such API key.")
    return form


def _filtered(request: HttpRequest, form: UsageFilterForm):
    filters = form.filters() if form.is_bound and form.is_valid() else {}
    return usage_list(customer=request.customer, **filters)


@customer_required
@require_GET
def usage(request: HttpRequest) -> HttpResponse:
    """The customer's calls, newest first, filtered, 50 a page."""
    form = _filter_form(request)
    invalid = form.is_bound and not form.is_valid()
    number = _page_number(request)
    rows = (
        []
        if invalid
        else list(_filtered(request, form)[(number - 1) * PAGE_SIZE :][: PAGE_SIZE + 1])
    )
    query = request.GET.copy()
    query.pop("page", None)
    context = {
        "customer": request.customer,
        "form": form,
        "filtered": form.is_bound,
        "page": Page(rows=rows[:PAGE_SIZE], number=number, has_next=len(rows) > PAGE_SIZE),
        "query": query.urlencode(),
    }
    return render(request, "billing/usage.html", context, status=400 if invalid else 200)


@customer_required
@require_GET
def usage_detail(request: HttpRequest, usage_id) -> HttpResponse:
    """One call's receipt: what it cost, at which price version, and how it was paid."""
    record = usage_get(customer=request.customer, usage_id=usage_id)
    if record is None:
        raise Http404("No such call.")
    context = {
        "customer": request.customer,
        "usage": record,
        "entry": usage_ledger_entry(usage=record),
    }
    return render(request, "billing/usage_detail.html", context)


class _Echo:
    """A file for csv.writer whose write returns the line instead of storing it."""

    def write(self, value: str) -> str:
        return value


def _csv_row(record: UsageRecord) -> list:
    return [
        str(record.pk),
        record.created_at.isoformat(),
        record.tool.name,
        record.api_key.prefix if record.api_key else "",
        record.api_key.name if record.api_key else "",
        record.outcome,
        "true" if record.charged else "false",
        record.path,
        record.price.version if record.price else "",
        microcents_to_decimal(record.amount_microcents),
        record.amount_microcents,
        record.currency,
        record.credits,
        record.duration_ms,
        record.refunded_at.isoformat() if record.refunded_at else "",
    ]


def _lines(batch: list[UsageRecord]) -> str:
    writer = csv.writer(_Echo())
    return "".join(writer.writerow(_csv_row(record)) for record in batch)


def _header() -> str:
    return csv.writer(_Echo()).writerow(CSV_COLUMNS)


def _rows_sync(rows) -> Iterator[str]:
    yield _header()
    after = None
    while batch := usage_batch(rows, after=after, size=EXPORT_BATCH):
        yield _lines(batch)
        after = (batch[-1].created_at, batch[-1].pk)


async def _rows_async(rows) -> AsyncIterator[str]:
    """The same rows for an ASGI server, which streams only an async iterator."""
    yield _header()
    after = None
    while batch := await sync_to_async(usage_batch)(rows, after=after, size=EXPORT_BATCH):
        yield await sync_to_async(_lines)(batch)
        after = (batch[-1].created_at, batch[-1].pk)


@customer_required
@require_GET
def usage_export(request: HttpRequest) -> HttpResponse:
    """The filtered calls as CSV, streamed in batches (no row limit, flat memory)."""
    form = _filter_form(request)
    if form.is_bound and not form.is_valid():
        problems = "; ".join(f"{name}: {' '.join(errors)}" for name, errors in form.errors.items())
        return HttpResponse(f"Invalid filters: {problems}\n", status=400, content_type="text/plain")
    rows = _filtered(request, form)
    stream = _rows_async(rows) if isinstance(request, ASGIRequest) else _rows_sync(rows)
    response = StreamingHttpResponse(stream, content_type="text/csv; charset=utf-8")
    filename = f"usage-{timezone.now():%Y%m%d-%H%M%S}.csv"
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    response["Cache-Control"] = "no-store"
    return response
