"""Stripe's test cards: numbers, ``tok_`` tokens, ``pm_card_`` aliases, and what they do."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from .errors import StripeError, invalid


@dataclass(frozen=True)
class Decline:
    """How a card fails: Stripe's error code, decline code and message."""

    code: str
    decline_code: str | None
    message: str


GENERIC = Decline("card_declined", "generic_decline", "Your card was declined.")
INSUFFICIENT = Decline("card_declined", "insufficient_funds", "Your card has insufficient funds.")
EXPIRED = Decline("expired_card", "expired_card", "Your card has expired.")
INCORRECT_CVC = Decline("incorrect_cvc", "incorrect_cvc", "Your card's security code is incorrect.")
PROCESSING = Decline(
    "processing_error",
    "processing_error",
    "An error occurred while processing your card. Try again in a little bit.",
)
AUTHENTICATION = Decline(
    "authentication_required",
    "authentication_required",
    "Your card was declined. This transaction requires authentication.",
)


@dataclass(frozen=True)
class Card:
    """One test card: its aliases, brand, and how it behaves on attach and on charge."""

    key: str  # the pm_card_ name, used as the card's identity
    number: str
    brand: str
    funding: str = "credit"
    decline: Decline | None = None  # on every charge
    attachable: bool = True  # Stripe refuses to attach declining cards, except "chargeCustomerFail"
    needs_authentication: bool = False

    @property
    def last4(self) -> str:
        """The last four digits."""
        return self.number[-4:]

    def as_dict(self) -> dict[str, object]:
        """What a payment method stores about the card."""
        return {
            "key": self.key,
            "brand": self.brand,
            "funding": self.funding,
            "last4": self.last4,
            "exp_month": 12,
            "exp_year": 2034,
            "fingerprint": hashlib.sha256(self.number.encode()).hexdigest()[:16],
        }


CARDS = [
    Card("pm_card_visa", "4242424242424242", "visa"),
    Card("pm_card_visa_debit", "4000056655665556", "visa", funding="debit"),
    Card("pm_card_mastercard", "5555555555554444", "mastercard"),
    Card("pm_card_amex", "378282246310005", "amex"),
    Card("pm_card_chargeDeclined", "4000000000000002", "visa", decline=GENERIC, attachable=False),
    Card(
        "pm_card_chargeDeclinedInsufficientFunds",
        "4000000000009995",
        "visa",
        decline=INSUFFICIENT,
        attachable=False,
    ),
    Card(
        "pm_card_chargeDeclinedExpiredCard",
        "4000000000000069",
        "visa",
        decline=EXPIRED,
        attachable=False,
    ),
    Card(
        "pm_card_chargeDeclinedIncorrectCvc",
        "4000000000000127",
        "visa",
        decline=INCORRECT_CVC,
        attachable=False,
    ),
    Card(
        "pm_card_chargeDeclinedProcessingError",
        "4000000000000119",
        "visa",
        decline=PROCESSING,
        attachable=False,
    ),
    Card("pm_card_chargeCustomerFail", "4000000000000341", "visa", decline=GENERIC),
    Card("pm_card_authenticationRequired", "4000002760003184", "visa", needs_authentication=True),
]

_BY_NUMBER = {card.number: card for card in CARDS}
_BY_KEY = {card.key: card for card in CARDS}
_BY_TOKEN = {"tok_" + card.key.removeprefix("pm_card_"): card for card in CARDS}


def by_key(key: str) -> Card:
    """The card a payment method was made from."""
    return _BY_KEY[key]


def is_pm_alias(value: str) -> bool:
    """Whether a payment method id is one of Stripe's ``pm_card_*`` test aliases."""
    return value in _BY_KEY


def from_alias(value: str) -> Card:
    """The card for a ``pm_card_*`` alias."""
    return _BY_KEY[value]


def from_token(token: str, *, param: str) -> Card:
    """The card for a ``tok_*`` test token."""
    card = _BY_TOKEN.get(token)
    if card is None:
        raise invalid(f"No such token: '{token}'", param=param, code="resource_missing")
    return card


def from_number(number: str, *, param: str) -> Card:
    """The card for a test number (spaces allowed); other numbers are refused as Stripe does."""
    digits = number.replace(" ", "").replace("-", "")
    card = _BY_NUMBER.get(digits)
    if card is not None:
        return card
    if not digits.isdigit() or not _luhn_ok(digits):
        raise card_error(
            Decline("incorrect_number", None, "Your card number is incorrect."), param=param
        )
    raise card_error(
        Decline(
            "card_declined",
            "test_mode_live_card",
            "Your card was declined. Your request was in test mode, but used a non test card.",
        ),
        param=param,
    )


def from_any(value: str, *, param: str) -> Card:
    """A card from a number, a ``tok_`` token or a ``pm_card_`` alias."""
    if value.startswith("tok_"):
        return from_token(value, param=param)
    if is_pm_alias(value):
        return from_alias(value)
    return from_number(value, param=param)


def card_error(decline: Decline, *, param: str | None = None, **extra: object) -> StripeError:
    """A 402 card_error for a decline."""
    return StripeError(
        402,
        "card_error",
        decline.message,
        code=decline.code,
        decline_code=decline.decline_code,
        param=param,
        extra=dict(extra),
    )


def _luhn_ok(digits: str) -> bool:
    total = 0
    for index, char in enumerate(reversed(digits)):
        value = int(char)
        if index % 2:
            value = value * 2 - 9 if value > 4 else value * 2
        total += value
    return total % 10 == 0
