"""The read side: saved views, totals, installments (pure), their SQL, and the CRM JSON API."""
