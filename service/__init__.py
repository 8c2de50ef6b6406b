"""motcua: live on-time and overdue counters for public administration service centers."""

__version__ = "0.1.0"
