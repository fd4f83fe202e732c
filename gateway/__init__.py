"""Boucle gateway: MQTT → parse → dedup → store, one module per stage."""
