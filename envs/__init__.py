"""Market data pipeline and the four-agent PettingZoo environment (no Ray here)."""
