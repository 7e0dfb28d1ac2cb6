"""What the consumers of new audit_log rows read besides the rows themselves (see log_reader)."""

# What the sensor reads of a log row: images as text, parsed (leniently) in Python.
LOG_ROW_COLUMNS = "id, table_name, record_id, action, CAST(old_data AS TEXT), CAST(new_data AS TEXT), changed_at"


def created_at(table: str) -> str:
    """Binds :ids (expanding). `table` is a source table's name, from code."""
    return f"SELECT id, created_at FROM {table} WHERE id IN :ids"
