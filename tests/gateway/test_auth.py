"""Authentication at /mcp: API keys and operator JWTs; 401 with the RFC 9728 challenge."""

from __future__ import annotations

import time
from datetime import timedelta

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from django.utils import timezone

from customers.authentication import authenticate, credentials_forget, principal_recent
from customers.models import Customer
from customers.services import api_key_revoke
from mcpbilling.errors import ApplicationError
from tests.factories import api_key, customer
from tests.gateway.support import balance, call, list_tools

METADATA_URL = "http://127.0.0.1:8000/.well-known/oauth-protected-resource/mcp"
ISSUER = "https://auth.example.com"
AUDIENCE = "http://127.0.0.1:8000/mcp"
SECRET = "test-hs256-secret-of-at-least-32-bytes!"
LIST = {"jsonrpc": "2.0", "id": 1, "method": "tools/list", "params": {}}


def post(url: str, headers: dict[str, str] | None = None) -> httpx.Response:
    """A raw tools/list POST (legacy stateless wire), so status and headers can be read."""
    sent = {"Content-Type": "application/json", "Accept": "application/json, text/event-stream"}
    return httpx.post(f"{url}/mcp", json=LIST, headers={**sent, **(headers or {})}, timeout=30)


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def assert_401(response: httpx.Response, *, error: str = "invalid_token") -> dict:
    assert response.status_code == 401
    challenge = response.headers["www-authenticate"]
    assert challenge.startswith(f'Bearer resource_metadata="{METADATA_URL}"')
    assert f'error="{error}"' in challenge
    return response.json()


def claims(**overrides) -> dict:
    now = int(time.time())
    return {"sub": "0", "iss": ISSUER, "aud": AUDIENCE, "iat": now, "exp": now + 300} | overrides


@pytest.fixture
def jwt_settings(settings):
    settings.JWT_ISSUER = ISSUER
    settings.JWT_HS256_SECRET = SECRET
    return settings


@pytest.mark.django_db(transaction=True)
class TestOverHttp:
    def test_no_credentials_get_the_challenge_without_an_error_code(self, site):
        response = post(site)
        assert response.status_code == 401
        assert response.headers["www-authenticate"] == f'Bearer resource_metadata="{METADATA_URL}"'
        assert response.json()["error"] == "unauthorized"

    @pytest.mark.parametrize(
        "token",
        ["mcpb_0123456789ab_not-the-secret", "mcpb_short", "not-a-key", "a.b.c"],
    )
    def test_a_bad_key_gets_401(self, site, funded, token):
        funded(10)
        body = assert_401(post(site, bearer(token)))
        assert body["error"] == "invalid_token" and body["error_description"]

    def test_a_right_prefix_with_a_wrong_secret_gets_401(self, site, funded):
        _, key = funded(10)
        assert_401(post(site, bearer(key[:-1] + ("x" if key[-1] != "x" else "y"))))

    def test_a_revoked_key_gets_401(self, site, funded):
        owner, _ = funded(10)
        issued = api_key(owner)
        assert post(site, bearer(issued.secret)).status_code == 200
        api_key_revoke(api_key=issued.api_key)
        credentials_forget(prefix=issued.api_key.prefix)  # else: refused once the cache expires
        assert "revoked" in assert_401(post(site, bearer(issued.secret)))["error_description"]

    def test_an_expired_key_gets_401(self, site, funded):
        owner, _ = funded(10)
        expired = api_key(owner, expires_at=timezone.now() - timedelta(seconds=1)).secret
        assert "expired" in assert_401(post(site, bearer(expired)))["error_description"]

    def test_a_suspended_customer_gets_401(self, site, funded):
        owner, key = funded(10)
        Customer.objects.filter(pk=owner.pk).update(status=Customer.Status.SUSPENDED)
        body = assert_401(post(site, bearer(key)))
        assert body["error"] == "account_inactive"

    def test_a_bad_origin_gets_403_before_authentication(self, site, funded):
        _, key = funded(10)
        assert post(site, {**bearer(key), "Origin": "https://evil.example"}).status_code == 403
        assert post(site, {"Origin": "https://evil.example"}).status_code == 403
        assert post(site, {**bearer(key), "Origin": "http://localhost:3000"}).status_code == 200

    @pytest.mark.parametrize(
        "host",
        [
            "127.0.0.1:x.evil.example",
            "127.0.0.1:8000.evil.example",
            "127.0.0.1:99999",
            "evil.example",
        ],
    )
    def test_a_host_that_only_starts_like_an_allowed_one_gets_421(self, site, funded, host):
        _, key = funded(10)
        response = post(site, {**bearer(key), "Host": host})
        assert response.status_code == 421
        assert response.json()["error"]["code"] == "request_refused"

    @pytest.mark.parametrize(
        "origin", ["http://localhost:3000.evil.example", "http://localhost:x@evil.example"]
    )
    def test_an_origin_that_only_starts_like_an_allowed_one_gets_403(self, site, funded, origin):
        _, key = funded(10)
        assert post(site, {**bearer(key), "Origin": origin}).status_code == 403

    def test_a_jwt_from_the_operator_calls_tools(self, site, funded, jwt_settings):
        owner, _ = funded(10)
        token = jwt.encode(claims(sub=str(owner.pk)), SECRET, algorithm="HS256")
        assert call(site, token, "calculate", {"expression": "2*3"}).structured_content == {
            "result": 6
        }
        assert balance(owner) == 9

    def test_a_jwt_naming_the_customer_by_email(self, site, funded, jwt_settings):
        owner, _ = funded(10)
        token = jwt.encode(claims(sub=owner.email), SECRET, algorithm="HS256")
        assert "calculate" in list_tools(site, token)

    @pytest.mark.parametrize(
        ("change", "why"),
        [
            ({"aud": "https://other.example/mcp"}, "audience"),
            ({"iss": "https://someone-else.example"}, "issuer"),
            ({"exp": int(time.time()) - 60}, "expired"),
        ],
    )
    def test_a_jwt_with_a_wrong_claim_gets_401(self, site, funded, jwt_settings, change, why):
        owner, _ = funded(10)
        token = jwt.encode(claims(sub=str(owner.pk), **change), SECRET, algorithm="HS256")
        assert why in assert_401(post(site, bearer(token)))["error_description"].lower()

    def test_a_jwt_with_alg_none_gets_401(self, site, funded, jwt_settings):
        owner, _ = funded(10)
        token = jwt.encode(claims(sub=str(owner.pk)), None, algorithm="none")
        assert "none" in assert_401(post(site, bearer(token)))["error_description"]


@pytest.mark.django_db
class TestAuthenticate:
    def test_a_cached_key_costs_no_query(self, django_assert_num_queries):
        issued = api_key(customer())
        authenticate(token=issued.secret)
        with django_assert_num_queries(0):
            principal = authenticate(token=issued.secret)
        assert principal.api_key.pk == issued.api_key.pk
        assert principal.customer.plan is not None

    def test_the_cached_customer_is_a_private_copy(self):
        issued = api_key(customer())
        first = authenticate(token=issued.secret)
        first.customer.plan = None
        assert authenticate(token=issued.secret).customer.plan is not None

    def test_a_revoked_key_is_refused_when_its_cache_entry_goes(self):
        issued = api_key(customer())
        authenticate(token=issued.secret)
        api_key_revoke(api_key=issued.api_key)
        credentials_forget(prefix=issued.api_key.prefix)
        with pytest.raises(ApplicationError) as refused:
            authenticate(token=issued.secret)
        assert refused.value.status == 401

    def test_the_key_cache_lasts_at_most_a_minute(self, settings):
        from customers.authentication import RECENT_PRINCIPAL_TTL_S, _key_ttl

        settings.API_KEY_CACHE_TTL_S = 3600
        assert _key_ttl() + RECENT_PRINCIPAL_TTL_S <= 60

    def test_a_recent_principal_costs_no_query_and_is_the_callers_own(
        self, django_assert_num_queries
    ):
        issued = api_key(customer())
        first = authenticate(token=issued.secret)
        with django_assert_num_queries(0):
            again = principal_recent(token=issued.secret)
        assert again.customer.pk == first.customer.pk and again.api_key.pk == issued.api_key.pk
        again.customer.period_start = timezone.now() + timedelta(days=3)
        assert principal_recent(token=issued.secret).customer.period_start != (
            again.customer.period_start
        )

    def test_a_recent_principal_is_not_kept_past_revocation_or_expiry(self):
        soon = timezone.now() + timedelta(minutes=5)
        issued = api_key(customer(), expires_at=soon)
        authenticate(token=issued.secret)
        assert principal_recent(token=issued.secret, now=soon + timedelta(seconds=1)) is None
        assert principal_recent(token=issued.secret) is not None
        api_key_revoke(api_key=issued.api_key)
        credentials_forget(prefix=issued.api_key.prefix)
        assert principal_recent(token=issued.secret) is None
        assert principal_recent(token="mcpb_" + "x" * 40) is None

    def test_a_key_expiring_later_is_refused_once_it_expires(self):
        soon = timezone.now() + timedelta(minutes=5)
        issued = api_key(customer(), expires_at=soon)
        authenticate(token=issued.secret)  # cached while valid
        with pytest.raises(ApplicationError, match="expired"):
            authenticate(token=issued.secret, now=soon + timedelta(seconds=1))

    def test_last_used_is_recorded(self):
        issued = api_key(customer())
        authenticate(token=issued.secret)
        issued.api_key.refresh_from_db()
        assert issued.api_key.last_used_at is not None

    def test_rs256_with_the_configured_public_key(self, settings):
        private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        settings.JWT_ISSUER = ISSUER
        settings.JWT_RS256_PUBLIC_KEY = (
            private.public_key()
            .public_bytes(
                serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
            )
            .decode()
        )
        owner = customer()
        token = jwt.encode(claims(sub=str(owner.pk)), private, algorithm="RS256")
        assert authenticate(token=token).customer.pk == owner.pk
        # The public key is no HS256 secret: a token signed with it as one is refused.
        forged = jwt.encode(claims(sub=str(owner.pk)), "x" * 32, algorithm="HS256")
        with pytest.raises(ApplicationError, match="HS256"):
            authenticate(token=forged)

    def test_an_algorithm_outside_the_allow_list_is_refused(self, jwt_settings):
        owner = customer()
        token = jwt.encode(claims(sub=str(owner.pk)), SECRET * 2, algorithm="HS512")
        with pytest.raises(ApplicationError, match="HS512"):
            authenticate(token=token)

    def test_a_jwt_without_exp_is_refused(self, jwt_settings):
        owner = customer()
        token = jwt.encode({"sub": str(owner.pk), "iss": ISSUER, "aud": AUDIENCE}, SECRET)
        with pytest.raises(ApplicationError, match="exp"):
            authenticate(token=token)

    def test_jwts_are_refused_when_no_issuer_is_configured(self, settings):
        settings.JWT_ISSUER = ""
        token = jwt.encode(claims(sub=str(customer().pk)), SECRET, algorithm="HS256")
        with pytest.raises(ApplicationError, match="not accepted"):
            authenticate(token=token)

    def test_a_jwt_for_an_unknown_customer_is_refused(self, jwt_settings):
        token = jwt.encode(claims(sub="nobody@example.com"), SECRET, algorithm="HS256")
        with pytest.raises(ApplicationError, match="does not exist"):
            authenticate(token=token)


@pytest.mark.parametrize(
    "path", ["/.well-known/oauth-protected-resource/mcp", "/.well-known/oauth-protected-resource"]
)
def test_protected_resource_metadata(client, settings, path):
    settings.JWT_ISSUER = ISSUER
    metadata = client.get(path).json()
    assert metadata["resource"] == "http://127.0.0.1:8000/mcp"
    assert metadata["authorization_servers"] == [ISSUER]
    assert metadata["bearer_methods_supported"] == ["header"]
