"""Stripe's form encoding (``a[b][0][c]=v``, ``expand[]=x``) and typed access to the result."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from decimal import Decimal, InvalidOperation
from typing import Any
from urllib.parse import parse_qsl

from .errors import invalid, missing_param

_KEY = re.compile(r"^([^\[\]]+)((?:\[[^\[\]]*\])*)$")
_PART = re.compile(r"\[([^\[\]]*)\]")


def decode(text: str) -> dict[str, Any]:
    """Decode a form-encoded body or query string into nested dicts and lists."""
    return decode_pairs(parse_qsl(text, keep_blank_values=True))


def decode_pairs(pairs: Iterable[tuple[str, str]]) -> dict[str, Any]:
    """Decode ``(key, value)`` pairs, building nested structures from bracketed keys."""
    root: dict[str, Any] = {}
    for key, value in pairs:
        _assign(root, _split_key(key), value, key)
    return _listify(root)


def _split_key(key: str) -> list[str]:
    match = _KEY.match(key)
    if not match:
        raise invalid(f"Invalid parameter name: {key}", param=key)
    return [match.group(1), *_PART.findall(match.group(2))]


def _assign(node: dict[str, Any], parts: list[str], value: str, key: str) -> None:
    for index, part in enumerate(parts):
        last = index == len(parts) - 1
        name = str(len(node)) if part == "" else part
        if last:
            if isinstance(node.get(name), dict):
                raise invalid(f"Invalid value for {key}: a hash was expected.", param=key)
            node[name] = value
            return
        child = node.setdefault(name, {})
        if not isinstance(child, dict):
            raise invalid(f"Invalid hash for {key}: it was already given a value.", param=key)
        node = child


def _listify(node: Any) -> Any:
    """Turn dicts whose keys are all indexes into lists, in index order."""
    if not isinstance(node, dict):
        return node
    converted = {key: _listify(value) for key, value in node.items()}
    if converted and all(key.isdigit() for key in converted):
        return [converted[key] for key in sorted(converted, key=int)]
    return converted


def flatten(data: Any, prefix: str = "") -> list[tuple[str, str]]:
    """The inverse of decode: sorted ``(key, value)`` pairs, for comparing requests."""
    if isinstance(data, Mapping):
        items: Iterable[tuple[Any, Any]] = data.items()
    elif isinstance(data, list):
        items = enumerate(data)
    else:
        return [(prefix, str(data))]
    pairs: list[tuple[str, str]] = []
    for key, value in items:
        pairs.extend(flatten(value, f"{prefix}[{key}]" if prefix else str(key)))
    return sorted(pairs)


class Params:
    """Typed, validated access to decoded parameters; errors name the parameter as Stripe does."""

    def __init__(self, data: Mapping[str, Any] | None = None, prefix: str = "") -> None:
        self.data: dict[str, Any] = dict(data or {})
        self.prefix = prefix

    def name(self, key: str) -> str:
        """The full parameter name, e.g. ``items[0][price]``."""
        return f"{self.prefix}[{key}]" if self.prefix else key

    def has(self, key: str) -> bool:
        """Whether the parameter was sent."""
        return key in self.data

    def raw(self, key: str) -> Any:
        """The decoded value as sent (string, dict, list or None)."""
        return self.data.get(key)

    def str(self, key: str, *, required: bool = False, choices: Iterable[str] | None = None):
        """A string parameter; ``choices`` restricts it to an enum."""
        value = self.data.get(key)
        if value is None or value == "":
            if required:
                raise missing_param(self.name(key))
            return None
        if not isinstance(value, str):
            raise invalid(f"Invalid string: {self.name(key)}", param=self.name(key))
        allowed = list(choices or [])
        if allowed and value not in allowed:
            raise invalid(
                f"Invalid {self.name(key)}: must be one of {', '.join(allowed)}",
                param=self.name(key),
            )
        return value

    def int(self, key: str, *, required: bool = False, minimum: int | None = None):
        """An integer parameter, optionally bounded below."""
        value = self.str(key, required=required)
        if value is None:
            return None
        try:
            number = int(value)
        except ValueError:
            raise invalid(f"Invalid integer: {value}", param=self.name(key)) from None
        if minimum is not None and number < minimum:
            raise invalid(
                f"Invalid {self.name(key)}: must be at least {minimum}", param=self.name(key)
            )
        return number

    def decimal(self, key: str, *, required: bool = False) -> Decimal | None:
        """A decimal parameter (``unit_amount_decimal``, meter values)."""
        value = self.str(key, required=required)
        if value is None:
            return None
        try:
            number = Decimal(value)
        except InvalidOperation:
            raise invalid(f"Invalid decimal: {value}", param=self.name(key)) from None
        if not number.is_finite():
            raise invalid(f"Invalid decimal: {value}", param=self.name(key))
        return number

    def bool(self, key: str, default: bool = False) -> bool:
        """A boolean parameter sent as ``true``/``false``."""
        value = self.str(key)
        if value is None:
            return default
        if value not in ("true", "false"):
            raise invalid(f"Invalid boolean: {value}", param=self.name(key))
        return value == "true"

    def sub(self, key: str, *, required: bool = False) -> Params:
        """A nested hash parameter as Params (empty when absent)."""
        value = self.data.get(key)
        if value in (None, ""):
            if required:
                raise missing_param(self.name(key))
            return Params({}, self.name(key))
        if not isinstance(value, dict):
            raise invalid(f"Invalid hash: {self.name(key)}", param=self.name(key))
        return Params(value, self.name(key))

    def list(self, key: str, *, required: bool = False) -> list[Any]:
        """An array parameter (``a[0]=``, ``a[]=``)."""
        value = self.data.get(key)
        if value in (None, ""):
            if required:
                raise missing_param(self.name(key))
            return []
        if isinstance(value, str):
            return [value]
        if not isinstance(value, list):
            raise invalid(f"Invalid array: {self.name(key)}", param=self.name(key))
        return value

    def subs(self, key: str, *, required: bool = False) -> list[Params]:
        """An array of hashes (``items[0][price]=``) as Params."""
        entries = self.list(key, required=required)
        result = []
        for index, entry in enumerate(entries):
            if not isinstance(entry, dict):
                raise invalid(f"Invalid hash: {self.name(key)}[{index}]", param=self.name(key))
            result.append(Params(entry, f"{self.name(key)}[{index}]"))
        return result

    def strings(self, key: str) -> list[str]:
        """An array of strings (``expand[]``, ``enabled_events[]``)."""
        values = self.list(key)
        if not all(isinstance(value, str) for value in values):
            raise invalid(f"Invalid array of strings: {self.name(key)}", param=self.name(key))
        return values
