"""Alerts: pure rules (rules), what they observe (observe), delivery (delivery) and the
service that runs them on new data (service). docs/api.md "Alerts"."""
