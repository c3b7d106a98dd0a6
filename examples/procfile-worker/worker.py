"""A background worker: beats once a second into the file `heartbeat`. Its first start crashes on purpose, to show
that the platform restarts a worker that fails."""
import pathlib
import sys
import time

crashed = pathlib.Path("worker-crashed-once")
if not crashed.exists():
    crashed.write_text("yes\n")
    print("worker: crashing on purpose on its first start", flush=True)
    sys.exit(3)

for beat in range(1, 3601):  # an hour of beats; then it exits, and the platform starts it again
    pathlib.Path("heartbeat").write_text(f"{beat}\n")
    print(f"worker: beat {beat}", flush=True)
    time.sleep(1)
