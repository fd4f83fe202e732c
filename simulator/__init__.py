"""Boucle fleet simulator: virtual devices running the firmware logic, with a ground-truth ledger."""
