"""python -m backend.simulation.fake_proxmox: see cli.main."""
from backend.simulation.fake_proxmox.cli import main

if __name__ == "__main__":
    main()
