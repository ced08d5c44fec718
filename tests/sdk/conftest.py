"""Fixtures: see tests/app_tenant/fixtures.py."""

from tests.app_tenant.fixtures import fake, quiet_api

__all__ = ["fake", "quiet_api"]
