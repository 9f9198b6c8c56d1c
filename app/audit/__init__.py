"""Audit trail: append-only records of security-relevant and administrative actions."""
