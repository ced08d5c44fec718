"""Fakes of the networks Clarion talks to."""
