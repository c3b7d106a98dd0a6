"""Test doubles: a fake Proxmox VE API server and the API schema checker it validates requests with
(re-exported here from backend/simulation), and for service tests the in-memory fakes of the platform's
collaborators: tests.fakes.proxmox (FakeProxmoxClient, FakeProxmoxClients) and tests.fakes.transport
(FakeTransport, FakeTransports, RecordingHooks)."""
from backend.simulation.fake_proxmox import FakeProxmox, Node, SchemaViolation, Storage
from backend.simulation.pve_schema import validate

__all__ = ["FakeProxmox", "Node", "SchemaViolation", "Storage", "validate"]
