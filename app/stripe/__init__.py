"""Talking to Stripe: the one gateway (the official SDK), its guards, reading Stripe's
objects, and account setup."""
