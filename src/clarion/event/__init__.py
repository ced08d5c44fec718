"""What happened in an app, recorded with the change that caused it: webhooks and the event feed."""
