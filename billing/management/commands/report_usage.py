"""``report_usage``: send pending usage to Stripe's meters now and say what was sent."""

from django.core.management.base import BaseCommand

from billing.models import OutboxMessage
from billing.services.outbox import outbox_dispatch


class Command(BaseCommand):
    help = "Send pending usage to Stripe's meters now and say what was sent."

    def add_arguments(self, parser):
        parser.add_argument("--batch-size", type=int, default=None)
        parser.add_argument(
            "--all-kinds",
            action="store_true",
            help="Send payments too, not only Stripe customers and meter events.",
        )

    def handle(self, *args, batch_size=None, all_kinds=False, **options):
        kinds = (
            None
            if all_kinds
            else [OutboxMessage.Kind.CUSTOMER_SYNC, OutboxMessage.Kind.METER_EVENT]
        )
        report = outbox_dispatch(batch_size=batch_size, kinds=kinds)
        self.stdout.write(str(report))
