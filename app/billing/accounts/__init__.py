"""A user's account: the user row, the hot read of an account, plain rows."""
