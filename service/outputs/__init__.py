"""What reads state and renders it: /metrics, the JSON APIs, the period report."""
