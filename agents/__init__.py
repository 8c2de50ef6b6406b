"""Faust agents: thin adapters that feed dossier events to the domain core."""
