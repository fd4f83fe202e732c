"""Distances between sites: boucle.geo (the registry checks depots with it too)."""

from boucle.geo import EARTH_RADIUS_KM, distance_km

__all__ = ["EARTH_RADIUS_KM", "distance_km"]
