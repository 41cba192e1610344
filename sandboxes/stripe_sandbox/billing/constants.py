"""Billing timing rules and terminal subscription statuses."""

from __future__ import annotations

DAY = 86400
HOUR = 3600
TRIAL_WILL_END_BEFORE = 3 * DAY
INCOMPLETE_EXPIRES_AFTER = 23 * HOUR
# Dunning: after the first failed renewal charge, retry at these offsets (days
# after the first failure); when the last retry fails, the subscription becomes
# canceled or unpaid (``failed_payment_outcome``).
PAYMENT_RETRY_DAYS = [3, 5, 7]

ENDED = ("canceled", "incomplete_expired")
