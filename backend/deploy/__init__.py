"""Adapter: getting an app running in a guest.

transport.py (one interface), ssh.py and local.py (its two implementations), guests.py (the factories
that open a transport to a GuestTarget, and the hooks a simulated guest's app follows), recipes.py
(what to install, build and start for a framework), units.py (systemd units and environment files),
deployer.py (one release: build, switch, health-check, switch back). Nothing here knows Flask, the
database or the services: a caller hands in an address, limits, a log sink and a run control.
"""
