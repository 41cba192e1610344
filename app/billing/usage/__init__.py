"""Usage: consuming generations, usage periods, and entitlements."""
