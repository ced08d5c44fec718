"""Audiences compiled to SQL predicates and streamed in chunks."""
