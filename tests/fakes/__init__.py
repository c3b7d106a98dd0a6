"""Test doubles: a fake Proxmox VE API server and the API schema checker it validates requests with."""
from tests.fakes.fake_proxmox import FakeProxmox, Node, SchemaViolation, Storage
from tests.fakes.pve_schema import validate

__all__ = ["FakeProxmox", "Node", "SchemaViolation", "Storage", "validate"]
