"""Clarion's own JSON API under /v1: apps, credentials, campaigns and more (docs/api.md)."""
