"""Simulation: a fake Proxmox VE server and local sandboxes standing in for guests.

Tests run against it, and `python app.py --simulate` runs the whole platform on one machine with it.
"""
