from django.core.management.base import BaseCommand, CommandError

from billing.models import Plan
from billing.services.ledger import credit_grant
from customers.services import api_key_create, customer_create
from mcpbilling.errors import ApplicationError


class Command(BaseCommand):
    help = "Create a customer on a plan, grant credits, and print its first API key."

    def add_arguments(self, parser):
        parser.add_argument("--email", required=True)
        parser.add_argument("--name", default="")
        parser.add_argument("--plan", default="credits", help="plan slug (default: credits)")
        parser.add_argument("--credits", type=int, default=0, help="credits to grant")

    def handle(self, *args, email, name, plan, credits, **options):
        if credits < 0:
            raise CommandError("--credits must be 0 or more.")
        chosen = Plan.objects.filter(slug=plan).first()
        if chosen is None:
            known = ", ".join(Plan.objects.values_list("slug", flat=True)) or "none (run seed_demo)"
            raise CommandError(f"No plan {plan!r}. Plans: {known}.")
        try:
            customer = customer_create(email=email, name=name, plan=chosen)
        except ApplicationError as exc:
            raise CommandError(exc.message) from exc
        if credits:
            credit_grant(
                customer_id=customer.pk,
                credits=credits,
                idempotency_key=f"cli-initial:{customer.pk}",
                description="Initial credits (customer_create)",
            )
        issued = api_key_create(customer=customer, name="cli")
        self.stdout.write(f"customer={customer.pk} email={customer.email} plan={chosen.slug}")
        self.stdout.write(f"api_key={issued.secret}")
