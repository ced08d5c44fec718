"""Outbound calls to push services; each provider returns an `Outcome` value."""
