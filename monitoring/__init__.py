"""Monitoring: what the served models led to (A/B outcomes from impressions and rating events)."""
