"""The OpenAPI schema: drf-spectacular, with what every operation shares added here.

Each operation gets the error answers it can give (the one error shape), each
POST the ``Idempotency-Key`` header, and components are named after the view
and serializer that define them (``CustomerListApi.InputSerializer`` becomes
``CustomerListInput``), so the nested serializers of STYLE.md never clash.
"""

from __future__ import annotations

from drf_spectacular.openapi import AutoSchema
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse
from rest_framework import serializers

from mcpbilling.api.idempotency import HEADER, MAX_KEY_LENGTH


class ErrorDetailSerializer(serializers.Serializer):
    code = serializers.CharField(help_text="Stable and machine-readable, e.g. `not_found`.")
    message = serializers.CharField(help_text="For a person: what went wrong and what to do.")
    fields = serializers.DictField(
        child=serializers.ListField(child=serializers.CharField()),
        required=False,
        help_text="Per field (nested fields dotted: `tiers.0.up_to`), what is wrong with it.",
    )


class ErrorSerializer(serializers.Serializer):
    error = ErrorDetailSerializer()


def _error(description: str) -> OpenApiResponse:
    return OpenApiResponse(ErrorSerializer, description=description)


ERRORS = {
    "400": _error("The request is not valid (`validation_error`, ...); nothing changed."),
    "401": _error("No valid `Authorization: Token ...` and no admin session."),
    "403": _error("Not staff, or missing the model permission this needs."),
    "404": _error("No such object."),
    "409": _error("The request conflicts with the object's state or an earlier Idempotency-Key."),
    "415": _error("The body is not JSON."),
}


class ApiSchema(AutoSchema):
    def get_serializer_name(self, serializer, direction):
        """``CustomerListApi.InputSerializer`` -> ``CustomerListInput``."""
        parts = type(serializer).__qualname__.split(".")
        return "".join(
            part.removesuffix("Serializer").removesuffix("Api") if len(parts) > 1 else part
            for part in parts
        )

    def get_override_parameters(self):
        parameters = list(super().get_override_parameters())
        if self.method == "POST":
            parameters.append(
                OpenApiParameter(
                    HEADER,
                    str,
                    OpenApiParameter.HEADER,
                    description=(
                        "Makes a retry safe: the same key with the same request returns the "
                        "first answer and changes nothing again; with another request, 409. "
                        f"Up to {MAX_KEY_LENGTH} characters, kept at least 24 hours."
                    ),
                )
            )
        return parameters

    def _get_response_bodies(self, direction="response"):
        responses = super()._get_response_bodies(direction)
        codes = ["401", "403"]
        if self.method in ("POST", "PUT", "PATCH"):
            codes += ["400", "409", "415"]
        if self.method == "GET" and self._is_list_view():
            codes.append("400")  # filters and cursors are validated
        if "{" in self.path or self.method == "DELETE":
            codes += ["404", "409"] if self.method == "DELETE" else ["404"]
        for code in codes:
            if code not in responses:
                responses[code] = self._get_response_for_code(ERRORS[code], code)
        return responses
