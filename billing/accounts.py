"""django-allauth's hooks: sign-up makes the billing customer; where a sign-in lands."""

from __future__ import annotations

from allauth.account.adapter import DefaultAccountAdapter
from allauth.account.forms import SignupForm as AllauthSignupForm
from django import forms
from django.db import transaction
from django.urls import reverse

from billing.services.accounts import customer_email_taken, customer_sign_up


class SignupForm(AllauthSignupForm):
    def clean_email(self) -> str:
        """A customer of another sign-in keeps its email (the sign-up would have no customer)."""
        email = super().clean_email()
        if email and customer_email_taken(email=email):
            raise forms.ValidationError("An account with this email exists: sign in instead.")
        return email


class AccountAdapter(DefaultAccountAdapter):
    def save_user(self, request, user, form, commit=True):
        """The user and its billing customer are created together, or neither is."""
        with transaction.atomic():
            user = super().save_user(request, user, form, commit=True)
            customer_sign_up(user=user)
        return user

    def get_login_redirect_url(self, request) -> str:
        """Customers land on their dashboard; operators without a customer in the admin."""
        user = request.user
        if user.is_staff and not hasattr(user, "billing_customer"):
            return reverse("admin:index")
        return super().get_login_redirect_url(request)
