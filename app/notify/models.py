"""Notification tables (webhooks, deliveries)."""
