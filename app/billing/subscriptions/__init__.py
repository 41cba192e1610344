"""Subscriptions: checkout, changes, the guarded store, ordering, the owner's summary,
sync with Stripe."""
