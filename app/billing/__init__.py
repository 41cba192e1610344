"""Billing rules: what a Stripe object means for one of our users."""
