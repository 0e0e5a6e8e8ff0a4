"""API keys: issued once, stored hashed, rotated and revoked."""

import pytest

from billing.models import OutboxMessage
from customers.models import ApiKey
from customers.services import (
    api_key_create,
    api_key_hash,
    api_key_matches,
    api_key_prefix_of,
    api_key_revoke,
    api_key_rotate,
    customer_create,
)
from mcpbilling.errors import ApplicationError
from tests.factories import customer

pytestmark = pytest.mark.django_db


def test_the_secret_is_shown_once_and_only_its_hash_is_stored():
    issued = api_key_create(customer=customer())
    assert issued.secret.startswith("mcpb_")
    stored = ApiKey.objects.get(pk=issued.api_key.pk)
    assert issued.secret not in {stored.prefix, stored.secret_hash}
    assert stored.secret_hash == api_key_hash(issued.secret)
    assert api_key_prefix_of(issued.secret) == stored.prefix
    assert api_key_matches(stored, issued.secret)
    assert not api_key_matches(stored, issued.secret + "x")


@pytest.mark.parametrize(
    "raw",
    ["", "sk_test_123", "mcpb_", "mcpb_short_secret", "mcpb_0123456789ab", "mcpb_0123456789ab_"],
)
def test_malformed_keys_have_no_prefix(raw):
    assert api_key_prefix_of(raw) is None


def test_rotation_revokes_the_old_key_and_keeps_its_settings():
    owner = customer()
    old = api_key_create(customer=owner, name="ci", scopes=["calculate"], daily_budget_microcents=5)
    new = api_key_rotate(api_key=old.api_key)
    old.api_key.refresh_from_db()
    assert old.api_key.revoked_at is not None
    assert (new.api_key.name, new.api_key.scopes, new.api_key.daily_budget_microcents) == (
        "ci",
        ["calculate"],
        5,
    )
    assert new.secret != old.secret and new.api_key.revoked_at is None


def test_revoking_twice_keeps_the_first_time():
    issued = api_key_create(customer=customer())
    first = api_key_revoke(api_key=issued.api_key).revoked_at
    assert api_key_revoke(api_key=issued.api_key).revoked_at == first


def test_scopes_limit_tools():
    owner = customer()
    assert api_key_create(customer=owner).api_key.allows_tool("anything")
    limited = api_key_create(customer=owner, scopes=["calculate"]).api_key
    assert limited.allows_tool("calculate") and not limited.allows_tool("other")


def test_emails_are_unique_whatever_their_case():
    customer_create(email="Ann@Example.com")
    with pytest.raises(ApplicationError) as info:
        customer_create(email="ann@example.com ")
    assert info.value.code == "customer_exists"


def test_a_new_customer_queues_its_stripe_customer():
    owner = customer_create(email="queued@example.com")
    message = OutboxMessage.objects.get(customer=owner)
    assert (message.kind, message.status) == ("customer_sync", "pending")
    assert message.identifier == f"customer_sync:{owner.pk}"
