"""Side-by-side benchmarks against peer tools; run as `python -m bench.<name>`."""
