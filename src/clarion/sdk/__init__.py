"""The Web SDK, its service worker and the demo page, served under /sdk/v1/ (docs/sdk.md)."""
