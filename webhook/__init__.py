"""Xero webhook intake: verify the signature, parse the events, keep them, wake the sync."""
