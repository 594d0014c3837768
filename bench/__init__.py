"""Benchmarks: plain scripts that start real processes on loopback and print numbers (see README.md)."""
