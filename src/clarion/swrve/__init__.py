"""The Swrve-compatible Batch Push API (spec/swrve-batch-push-api.txt), mapped onto the core."""
