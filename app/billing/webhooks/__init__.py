"""Stripe's webhook events: receive, record, apply."""
