"""``{% if here|in_section:name %}``: the navigation marks a page and the pages under it."""

from django import template

register = template.Library()


@register.filter
def in_section(view_name: str | None, section: str) -> bool:
    """Whether ``view_name`` is ``section`` or one of its pages ("site:usage-detail")."""
    return bool(view_name) and (view_name == section or view_name.startswith(f"{section}-"))
