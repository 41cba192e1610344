"""Credit packs: one-time purchases of generations (Checkout mode=payment)."""
