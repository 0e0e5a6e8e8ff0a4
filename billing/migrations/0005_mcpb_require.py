"""``mcpb_require(ok, detail)``: raise when a required statement returned no row.

The charge engine sends a phase's statements as one query string (ADR 0007);
a condition it depends on (enough credits, the hold still held) must stop the
whole string inside PostgreSQL, since no one reads its outcome before the
end. ``billing.rows`` catches the error by its message and raises the
refusal the statement was queued with. PostgreSQL only: SQLite runs each
statement at once and the check is made in Python.
"""

from django.db import migrations

CREATE = """
CREATE OR REPLACE FUNCTION mcpb_require(ok boolean, detail text) RETURNS boolean
LANGUAGE plpgsql VOLATILE AS $$
BEGIN
    IF NOT ok THEN
        RAISE EXCEPTION USING MESSAGE = 'mcpb_required', DETAIL = detail;
    END IF;
    RETURN true;
END
$$
"""
DROP = "DROP FUNCTION IF EXISTS mcpb_require(boolean, text)"


def _on_postgresql(sql: str):
    def run(apps, schema_editor) -> None:
        if schema_editor.connection.vendor == "postgresql":
            schema_editor.execute(sql)

    return run


class Migration(migrations.Migration):
    dependencies = [("billing", "0004_hot_path_indexes")]

    operations = [migrations.RunPython(_on_postgresql(CREATE), _on_postgresql(DROP))]
