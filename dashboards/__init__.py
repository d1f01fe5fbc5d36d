"""Dashboards: realtime health and results pages over HTTP (issue #7)."""
