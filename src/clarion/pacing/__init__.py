"""Shared pacing state for every worker: a campaign's or a provider's next send time, and a push
service's hold after it asked to slow down (docs/pacing.md). One interface (`limiter.Limiter`), two
stores: the database, or Redis when Redis is the queue."""
