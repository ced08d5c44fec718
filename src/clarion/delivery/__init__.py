"""The delivery ledger, the retry policy and the deliver task."""
