"""REST API of the Stripe events received and their processing (wired in mcpbilling/api/urls.py)."""

from __future__ import annotations

import django_filters
from django.shortcuts import get_object_or_404
from drf_spectacular.utils import extend_schema
from rest_framework import generics, serializers
from rest_framework.response import Response
from rest_framework.views import APIView

from webhooks.models import EventProcessing
from webhooks.services import event_retry_now


class WebhookEventSerializer(serializers.Serializer):
    id = serializers.CharField(source="event_id", help_text="Stripe's event id (evt_...).")
    type = serializers.CharField()
    status = serializers.ChoiceField(choices=EventProcessing.Status.choices)
    attempts = serializers.IntegerField()
    last_error = serializers.CharField()
    result = serializers.CharField(help_text="What the handler did, or why it was ignored.")
    next_attempt_at = serializers.DateTimeField(allow_null=True)
    created_at = serializers.DateTimeField()
    updated_at = serializers.DateTimeField()
    processed_at = serializers.DateTimeField(allow_null=True)


class WebhookEventFilter(django_filters.FilterSet):
    status = django_filters.ChoiceFilter(choices=EventProcessing.Status.choices)
    type = django_filters.CharFilter(help_text="Stripe's event type, e.g. invoice.paid.")
    created_after = django_filters.IsoDateTimeFilter(field_name="created_at", lookup_expr="gte")
    created_before = django_filters.IsoDateTimeFilter(field_name="created_at", lookup_expr="lt")

    class Meta:
        model = EventProcessing
        fields = []


class WebhookEventListApi(generics.ListAPIView):
    """Stripe events received, newest first, with how their processing went."""

    queryset = EventProcessing.objects.all()
    serializer_class = WebhookEventSerializer
    filterset_class = WebhookEventFilter
    ordering = ("-id",)


class WebhookEventDetailApi(APIView):
    """One Stripe event's processing."""

    queryset = EventProcessing.objects.all()

    @extend_schema(responses=WebhookEventSerializer)
    def get(self, request, event_id: str):
        return Response(
            WebhookEventSerializer(get_object_or_404(EventProcessing, event_id=event_id)).data
        )


class WebhookEventRetryApi(APIView):
    """Process a failed (or stuck) event again now."""

    queryset = EventProcessing.objects.all()
    operator_permissions = {"POST": ("webhooks.change_eventprocessing",)}

    @extend_schema(
        summary="Retry a webhook event",
        description="Queued at once; 409 when it succeeded or was ignored.",
        request=None,
        responses=WebhookEventSerializer,
    )
    def post(self, request, event_id: str):
        processing = get_object_or_404(EventProcessing, event_id=event_id)
        return Response(WebhookEventSerializer(event_retry_now(processing=processing)).data)
