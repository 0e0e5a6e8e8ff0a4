from django.core.management.base import BaseCommand

from billing.demo import demo_seed


class Command(BaseCommand):
    help = (
        "Create the demo plans, credit packs, tools and customer (idempotent); print the demo key."
    )

    def handle(self, *args, **options):
        result = demo_seed()
        self.stdout.write(
            f"demo customer: {result.customer.email} (plan {result.customer.plan.slug})"
        )
        if result.admin_password:
            self.stdout.write(f"admin login: admin / {result.admin_password} (shown once)")
        if result.customer_password:
            self.stdout.write(
                f"customer login: {result.customer.email} / {result.customer_password} "
                "(shown once; sign in at /accounts/login/)"
            )
        self.stdout.write(f"api_key={result.api_key}")
