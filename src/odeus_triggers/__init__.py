"""Odeus Integrations API: the trigger endpoints."""

__version__ = "0.1.0"
