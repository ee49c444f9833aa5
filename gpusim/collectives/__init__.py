"""collectives layer."""
