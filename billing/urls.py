from django.urls import path

from billing import views

app_name = "billing"

urlpatterns = [
    path("credits/", views.credits, name="credits"),
    path("plans/", views.plans, name="plans"),
    path("payment-method/", views.payment_method, name="payment-method"),
    path("portal/", views.portal, name="portal"),
]
