"""REST API of the upstream MCP servers whose tools the gateway proxies (wired in
mcpbilling/api/urls.py)."""

from __future__ import annotations

import re

import django_filters
from django.shortcuts import get_object_or_404
from drf_spectacular.utils import OpenApiExample, extend_schema
from rest_framework import generics, serializers, status
from rest_framework.response import Response
from rest_framework.views import APIView

from billing.apis import ToolSerializer
from billing.models import UpstreamServer
from billing.selectors import tool_list
from billing.services.catalog import (
    upstream_server_create,
    upstream_server_delete,
    upstream_server_update,
)
from mcpbilling.gateway.catalog import catalog
from mcpbilling.gateway.upstream import upstream_refresh

HEADER_NAME = r"[A-Za-z0-9!#$%&'*+.^_`|~-]{1,100}"  # an HTTP token (RFC 9110)
ENV_NAME = r"[A-Za-z_][A-Za-z0-9_]{0,99}"
ENV_HELP = 'A value written "${NAME}" is read from the environment variable NAME.'


class UpstreamServerSerializer(serializers.Serializer):
    id = serializers.CharField(source="pk")
    name = serializers.SlugField()
    transport = serializers.ChoiceField(choices=UpstreamServer.Transport.choices)
    url = serializers.CharField(help_text="Streamable HTTP: the server's endpoint.")
    headers = serializers.DictField(child=serializers.CharField(), help_text=ENV_HELP)
    command = serializers.CharField(help_text="stdio: the command that starts the server.")
    args = serializers.ListField(child=serializers.CharField())
    env = serializers.DictField(child=serializers.CharField(), help_text=ENV_HELP)
    tool_prefix = serializers.CharField(help_text="Offered names are <tool_prefix><name>.")
    include = serializers.ListField(child=serializers.CharField(), help_text="Empty: all.")
    exclude = serializers.ListField(child=serializers.CharField())
    timeout_s = serializers.FloatField()
    enabled = serializers.BooleanField()
    created_at = serializers.DateTimeField()
    updated_at = serializers.DateTimeField()


def _strings(max_length: int, **options):
    return serializers.ListField(
        child=serializers.CharField(max_length=max_length), max_length=100, **options
    )


def _mapping(**options):
    return serializers.DictField(
        child=serializers.CharField(max_length=2000, allow_blank=True), **options
    )


class UpstreamServerInputSerializer(serializers.Serializer):
    name = serializers.SlugField(max_length=50)
    transport = serializers.ChoiceField(choices=UpstreamServer.Transport.choices)
    url = serializers.URLField(max_length=500, required=False, allow_blank=True)
    headers = _mapping(required=False, help_text=ENV_HELP)
    command = serializers.CharField(
        max_length=500,
        required=False,
        allow_blank=True,
        help_text="stdio: one of the deployment's MCP_UPSTREAM_STDIO_COMMANDS.",
    )
    args = _strings(1000, required=False)
    env = _mapping(required=False, help_text=ENV_HELP)
    tool_prefix = serializers.RegexField(r"^[A-Za-z0-9_.-]{0,64}$", required=False)
    include = _strings(128, required=False)
    exclude = _strings(128, required=False)
    timeout_s = serializers.FloatField(min_value=0.1, max_value=600, required=False)
    enabled = serializers.BooleanField(required=False)

    def validate(self, data):
        names = {"headers": HEADER_NAME, "env": ENV_NAME}
        for field, pattern in names.items():
            mapping = data.get(field) or {}
            if len(mapping) > 100:
                raise serializers.ValidationError({field: ["At most 100 entries."]})
            bad = [name for name in mapping if not re.fullmatch(pattern, name)]
            if bad:
                raise serializers.ValidationError({field: [f"Not a valid name: {bad[0]!r}."]})
        return data


class UpstreamServerFilter(django_filters.FilterSet):
    transport = django_filters.ChoiceFilter(choices=UpstreamServer.Transport.choices)
    enabled = django_filters.BooleanFilter()

    class Meta:
        model = UpstreamServer
        fields = []


class UpstreamServerListApi(generics.ListAPIView):
    """Upstream MCP servers, by name."""

    queryset = UpstreamServer.objects.all()
    serializer_class = UpstreamServerSerializer
    filterset_class = UpstreamServerFilter
    ordering = ("name",)

    @extend_schema(
        summary="Add an upstream server",
        description="Its tools appear (unpriced, so not offered yet) once it is refreshed.",
        request=UpstreamServerInputSerializer,
        responses={201: UpstreamServerSerializer},
        examples=[
            OpenApiExample(
                "A search server over Streamable HTTP",
                value={
                    "name": "search",
                    "transport": "http",
                    "url": "https://search.example.com/mcp",
                    "headers": {"Authorization": "Bearer ${SEARCH_TOKEN}"},
                    "tool_prefix": "search_",
                },
                request_only=True,
            )
        ],
    )
    def post(self, request):
        server = upstream_server_create(**_valid(UpstreamServerInputSerializer, request.data))
        catalog.invalidate()
        return Response(UpstreamServerSerializer(server).data, status=status.HTTP_201_CREATED)


class UpstreamServerDetailApi(APIView):
    """One upstream server."""

    queryset = UpstreamServer.objects.all()

    @extend_schema(responses=UpstreamServerSerializer)
    def get(self, request, server_id: int):
        return Response(UpstreamServerSerializer(_server(server_id)).data)

    @extend_schema(
        summary="Change an upstream server",
        request=UpstreamServerInputSerializer,
        responses=UpstreamServerSerializer,
    )
    def patch(self, request, server_id: int):
        changes = _valid(UpstreamServerInputSerializer, request.data, partial=True)
        server = upstream_server_update(server=_server(server_id), **changes)
        catalog.invalidate()
        return Response(UpstreamServerSerializer(server).data)

    @extend_schema(
        summary="Remove an upstream server",
        description="With its tools; refused (409) once a tool of it was priced or called: "
        "disable it instead.",
        responses={204: None},
    )
    def delete(self, request, server_id: int):
        upstream_server_delete(server=_server(server_id))
        catalog.invalidate()
        return Response(status=status.HTTP_204_NO_CONTENT)


class UpstreamServerRefreshApi(APIView):
    """List the server's tools now and bring their rows up to date."""

    queryset = UpstreamServer.objects.all()
    operator_permissions = {"POST": ("billing.change_upstreamserver", "billing.add_tool")}

    @extend_schema(
        summary="Refresh an upstream server's tools",
        description="New tools are added unpriced (price them to offer them); tools the "
        "server no longer lists are disabled. 424 when the server cannot be listed.",
        request=None,
        responses={200: ToolSerializer(many=True), 424: None},
    )
    def post(self, request, server_id: int):
        rows = upstream_refresh(server=_server(server_id))
        catalog.invalidate()
        tools = tool_list().filter(pk__in=[row.pk for row in rows]).order_by("name")
        return Response(ToolSerializer(tools, many=True).data)


def _server(server_id: int) -> UpstreamServer:
    return get_object_or_404(UpstreamServer, pk=server_id)


def _valid(serializer_class, data, **options) -> dict:
    serializer = serializer_class(data=data, **options)
    serializer.is_valid(raise_exception=True)
    return serializer.validated_data
