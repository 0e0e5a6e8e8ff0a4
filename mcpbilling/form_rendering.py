"""How django-bootstrap5 renders a field: errors marked, nothing marked "valid".

A green tick on every field the server did not complain about misleads (a password
re-entry is "valid" until its partner is fixed), so only errors are shown.
"""

from django_bootstrap5.renderers import FieldRenderer as BootstrapFieldRenderer


class FieldRenderer(BootstrapFieldRenderer):
    def get_server_side_validation_classes(self) -> str:
        return "is-invalid" if self.field_errors else ""
