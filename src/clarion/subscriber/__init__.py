"""Subscribers: registration from SDKs and apps, aliases, tags, engagement events."""
