"""Property-based fuzzing: the webhook endpoint (hypothesis) and the CRM API (schemathesis)."""
