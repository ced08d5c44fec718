"""The Gravitec-compatible Server API v3 (spec/gravitec-server-api.txt), mapped onto the core."""
