"""Campaigns: one send of one message to one audience, with its schedule, status and statistics."""
