"""Dossier state: stored records, merging events, and the ledger of live sums."""
