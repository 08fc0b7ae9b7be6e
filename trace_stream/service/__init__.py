"""Wiring: build the stages from settings, run each on its thread, stop them."""
