"""Redis: the latest snapshot and ledger of every lead, served by the lead API."""
