"""The admin API (/admin/v1) and its bearer token."""
