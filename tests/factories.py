"""factory_boy factories; customers are made through the service so they get an account."""

import itertools

import factory
from django.contrib.auth import get_user_model

from billing.models import BillingModel, CreditPack, Plan, Tool
from billing.services.pricing import tool_price_set
from customers.models import Customer
from customers.services import api_key_create, customer_create


class PlanFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Plan
        django_get_or_create = ("slug",)

    slug = factory.Sequence(lambda n: f"plan-{n}")
    name = factory.LazyAttribute(lambda o: o.slug.title())
    billing_model = BillingModel.CREDITS
    rate_limit_per_minute = 600


class CreditPackFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = CreditPack

    slug = factory.Sequence(lambda n: f"pack-{n}")
    name = factory.LazyAttribute(lambda o: o.slug.title())
    credits = 100
    price_cents = 1000


class ToolFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Tool
        django_get_or_create = ("name",)

    name = factory.Sequence(lambda n: f"tool_{n}")
    description = "A test tool."


def priced_tool(name="echo", *, cents=1, credits=1, **price):
    """A tool with one price version: ``cents`` per call (may be fractional) or ``credits``."""
    tool = ToolFactory(name=name)
    tool_price_set(
        tool=tool, unit_amount_microcents=int(cents * 1_000_000), credits=credits, **price
    )
    return tool


_emails = itertools.count(1)


def customer(email=None, *, plan=None, now=None, **fields):
    """A customer made by the service (with its credit account), fields then set directly."""
    email = email or f"customer{next(_emails)}@example.com"
    made = customer_create(email=email, plan=plan or PlanFactory(), now=now)
    for name, value in fields.items():
        setattr(made, name, value)
    if fields:
        made.save()
    return made


def api_key(owner, **options):
    return api_key_create(customer=owner, **options)


def shopper_create(client) -> Customer:
    """A user signed in on ``client`` whose billing customer is on a credits plan."""
    user = get_user_model().objects.create_user("shopper", "shopper@example.com", "pw-12345-x")
    owner = customer(
        "shopper@example.com", plan=PlanFactory(slug="credits", billing_model=BillingModel.CREDITS)
    )
    owner.user = user
    owner.save(update_fields=["user"])
    client.force_login(user)
    return owner


def signed_in_customer(client, email: str, *, plan=None, password: str = "pw-12345-x") -> Customer:
    """A customer with a sign-in (its email verified), signed in on ``client``."""
    from allauth.account.models import EmailAddress

    user = get_user_model().objects.create_user(email.split("@")[0], email, password)
    EmailAddress.objects.create(user=user, email=email, verified=True, primary=True)
    owner = customer(email, plan=plan or PlanFactory(slug="credits", billing_model="credits"))
    owner.user = user
    owner.save(update_fields=["user"])
    client.force_login(user)
    return owner
