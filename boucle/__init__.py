"""Boucle: shared code of the services — protocol, registry, storage, settings, the boucle command."""

__version__ = "0.1.0"
