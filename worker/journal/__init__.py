"""The per-job journal: its records (with `Outcome` and `Step`), the index that answers what the
journal proves, and the usage ledger. Never calls the API and never decides what to do next.
"""
