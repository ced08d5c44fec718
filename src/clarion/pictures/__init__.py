"""Notification pictures (Gravitec `icon` and `image`): fetched once per campaign before its fan-out,
checked and normalised, stored once by digest and served by Clarion under CLARION_PUBLIC_URL."""
