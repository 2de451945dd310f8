"""Benchmarks: GAG attention against plain attention measured in the same process."""
