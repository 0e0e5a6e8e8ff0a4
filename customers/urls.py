from django.urls import path

from customers import views

app_name = "customers"

urlpatterns = [
    path("keys/", views.keys, name="keys"),
    path("keys/<int:key_id>/rotate/", views.key_rotate, name="key-rotate"),
    path("keys/<int:key_id>/revoke/", views.key_revoke, name="key-revoke"),
]
