"""Boucle cloud: indicator API, security and dashboard (FastAPI)."""
