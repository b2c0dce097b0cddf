"""Governance: who may do what (roles), and an append-only log of who did what (audit)."""
