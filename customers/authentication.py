"""Who is calling: an API key or an operator-issued JWT, resolved to a customer.

API keys are found by their public prefix and checked by comparing SHA-256
digests in constant time. Lookups are cached (``API_KEY_CACHE_TTL_S``, at most
60 s including the process's own copy below, so a revoked key stops working
within a minute; ``credentials_forget`` makes it immediate), and customers with
their plan for ``CUSTOMER_CACHE_TTL_S``, so an authenticated call costs no
query. On top, each process keeps the principals of the last
``RECENT_PRINCIPAL_TTL_S`` seconds in memory (``principal_recent``), so the
gateway can skip even the shared cache on the event loop. Expiry and
revocation times are compared with the clock on every call.

A JWT is accepted when ``JWT_ISSUER`` and a key are configured: HS256 with
``JWT_HS256_SECRET`` or RS256 with ``JWT_RS256_PUBLIC_KEY``, nothing else
(``alg: none`` included). ``aud``, ``iss``, ``exp`` and ``sub`` are required;
``sub`` is the customer's id, or its email.
"""

from __future__ import annotations

import copy
import threading
import time
from dataclasses import dataclass
from datetime import datetime

import jwt
from django.conf import settings
from django.core.cache import cache
from django.utils import timezone

from customers.models import ApiKey, Customer
from customers.services import KEY_PREFIX, api_key_matches, api_key_prefix_of
from mcpbilling.errors import ApplicationError

ALLOWED_JWT_ALGORITHMS = ("HS256", "RS256")
MAX_KEY_CACHE_TTL_S = 60  # the shared cache and the process's own copy together
RECENT_PRINCIPAL_TTL_S = 2.0
_RECENT_KEPT = 10_000
_MISSING = "missing"  # cached for a prefix or subject that names nothing


@dataclass(frozen=True)
class Principal:
    """An authenticated caller: the customer (with its plan) and the key it used.

    ``api_key`` is None for a JWT, which may call every tool the plan offers.
    The customer is a private copy: the caller may change it freely.
    """

    customer: Customer
    api_key: ApiKey | None

    @property
    def rate_key(self) -> str:
        """What rate limits count against: the API key, or the customer for a JWT."""
        if self.api_key is not None:
            return f"key:{self.api_key.pk}"
        return f"customer:{self.customer.pk}"

    def allows_tool(self, tool_name: str) -> bool:
        return self.api_key is None or self.api_key.allows_tool(tool_name)


def _refused(message: str, code: str = "invalid_token") -> ApplicationError:
    return ApplicationError(code, message, status=401)


def authenticate(*, token: str, now: datetime | None = None) -> Principal:
    """The principal a bearer token (API key or JWT) stands for, or ApplicationError (401)."""
    now = now or timezone.now()
    token = token.strip()
    if token.startswith(KEY_PREFIX):
        api_key = _api_key_valid(token, now)
        principal = Principal(customer=_customer_active(api_key.customer_id), api_key=api_key)
    elif token.count(".") == 2:
        # A JWT's own expiry is checked by decoding it, so it is not kept in memory.
        return Principal(customer=_customer_active(_jwt_customer_id(token)), api_key=None)
    else:
        raise _refused("The token is neither an API key nor a JWT.")
    _recent.put(token, principal)
    return principal


class _RecentPrincipals:
    """API-key principals this process authenticated in the last few seconds, by token."""

    def __init__(self) -> None:
        self._entries: dict[str, tuple[float, Principal]] = {}
        self._lock = threading.Lock()

    def put(self, token: str, principal: Principal) -> None:
        with self._lock:
            if len(self._entries) >= _RECENT_KEPT:
                self._entries.clear()
            self._entries[token] = (time.monotonic() + RECENT_PRINCIPAL_TTL_S, principal)

    def get(self, token: str) -> Principal | None:
        entry = self._entries.get(token)
        if entry is None or entry[0] <= time.monotonic():
            return None
        return entry[1]

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()


_recent = _RecentPrincipals()


def principal_recent(*, token: str, now: datetime | None = None) -> Principal | None:
    """The principal of an API key authenticated here moments ago, with no I/O; else None.

    None also when the key has since expired or been revoked: ``authenticate``
    then gives the reason. Safe on the event loop.
    """
    principal = _recent.get(token.strip())
    if principal is None:
        return None
    now = now or timezone.now()
    api_key = principal.api_key
    if any(
        moment is not None and moment <= now for moment in (api_key.revoked_at, api_key.expires_at)
    ):
        return None
    # The caller may change its customer (a period rolled forward): give it its own.
    return Principal(customer=copy.copy(principal.customer), api_key=api_key)


# --- API keys ---------------------------------------------------------------


def _key_cache_key(prefix: str) -> str:
    return f"auth:key:{prefix}"


def _key_ttl() -> int:
    return min(settings.API_KEY_CACHE_TTL_S, int(MAX_KEY_CACHE_TTL_S - RECENT_PRINCIPAL_TTL_S))


def _api_key_valid(raw_key: str, now: datetime) -> ApiKey:
    prefix = api_key_prefix_of(raw_key)
    if prefix is None:
        raise _refused("The API key is malformed.")
    api_key = cache.get(_key_cache_key(prefix))
    if api_key is None:
        api_key = ApiKey.objects.filter(prefix=prefix).first() or _MISSING
        if isinstance(api_key, ApiKey):
            # Recorded once per cache lifetime, not on every call.
            ApiKey.objects.filter(pk=api_key.pk).update(last_used_at=now)
        cache.set(_key_cache_key(prefix), api_key, timeout=_key_ttl())
    if not isinstance(api_key, ApiKey) or not api_key_matches(api_key, raw_key):
        raise _refused("The API key is not valid.")
    if api_key.revoked_at is not None and api_key.revoked_at <= now:
        raise _refused("The API key has been revoked.")
    if api_key.expires_at is not None and api_key.expires_at <= now:
        raise _refused("The API key has expired.")
    return api_key


# --- customers --------------------------------------------------------------


def _customer_cache_key(customer_id: int) -> str:
    return f"auth:customer:{customer_id}"


def _customer_active(customer_id: int) -> Customer:
    customer = cache.get(_customer_cache_key(customer_id))
    if customer is None:
        customer = (
            Customer.objects.select_related("plan", "plan__upgrade_plan")
            .filter(pk=customer_id)
            .first()
        ) or _MISSING
        cache.set(_customer_cache_key(customer_id), customer, timeout=settings.CUSTOMER_CACHE_TTL_S)
    if not isinstance(customer, Customer):
        raise _refused("The customer of this token does not exist.")
    if customer.status in (Customer.Status.SUSPENDED, Customer.Status.CANCELED):
        raise _refused(f"This account is {customer.status}.", code="account_inactive")
    return customer


def credentials_forget(*, prefix: str | None = None, customer_id: int | None = None) -> None:
    """Drop cached lookups now (a key revoked, a customer changed) instead of at expiry.

    Other processes drop their own copies of principals within ``RECENT_PRINCIPAL_TTL_S``.
    """
    _recent.clear()
    if prefix is not None:
        cache.delete(_key_cache_key(prefix))
    if customer_id is not None:
        cache.delete(_customer_cache_key(customer_id))


# --- JWT --------------------------------------------------------------------


def _jwt_key(algorithm: str) -> str:
    if algorithm not in ALLOWED_JWT_ALGORITHMS or algorithm not in settings.JWT_ALGORITHMS:
        return ""
    if algorithm == "HS256":
        return settings.JWT_HS256_SECRET
    return settings.JWT_RS256_PUBLIC_KEY


def _jwt_customer_id(token: str) -> int:
    if not settings.JWT_ISSUER:
        raise _refused("JWTs are not accepted here.")
    try:
        algorithm = jwt.get_unverified_header(token).get("alg")
    except jwt.PyJWTError as exc:
        raise _refused("The JWT is malformed.") from exc
    key = _jwt_key(algorithm) if isinstance(algorithm, str) else ""
    if not key:
        raise _refused(f"The JWT algorithm {algorithm!r} is not accepted.")
    try:
        claims = jwt.decode(
            token,
            key,
            algorithms=[algorithm],
            audience=settings.JWT_AUDIENCE,
            issuer=settings.JWT_ISSUER,
            leeway=settings.JWT_LEEWAY_S,
            options={"require": ["exp", "aud", "iss", "sub"]},
        )
    except jwt.PyJWTError as exc:  # invalid claims or signature, or an unusable key
        raise _refused(f"The JWT is not valid: {exc}") from exc
    return _customer_id_of_subject(str(claims["sub"]))


def _customer_id_of_subject(subject: str) -> int:
    """``sub`` is the customer's id (digits) or its email."""
    if subject.isdigit():
        return int(subject)
    cache_key = f"auth:subject:{subject.strip().lower()}"
    customer_id = cache.get(cache_key)
    if customer_id is None:
        customer_id = (
            Customer.objects.filter(email=subject.strip().lower())
            .values_list("pk", flat=True)
            .first()
        ) or _MISSING
        cache.set(cache_key, customer_id, timeout=settings.CUSTOMER_CACHE_TTL_S)
    if not isinstance(customer_id, int):
        raise _refused("The customer of this token does not exist.")
    return customer_id
