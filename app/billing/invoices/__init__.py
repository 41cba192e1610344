"""Invoices kept from webhooks, the upcoming invoice, and dunning (the user's payment action)."""
