"""Clarion: a self-hosted push notification server."""

__version__ = "0.1.0"
