"""Test doubles: a fake Proxmox VE API server and the API schema checker it validates requests with."""
from backend.simulation.fake_proxmox import FakeProxmox, Node, SchemaViolation, Storage
from backend.simulation.pve_schema import validate

__all__ = ["FakeProxmox", "Node", "SchemaViolation", "Storage", "validate"]
