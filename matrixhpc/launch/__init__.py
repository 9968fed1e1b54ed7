"""Launchers start processes (services, workers) and watch them; they know nothing of routing."""
