"""The release phase: runs once per release, before it serves (here it records that it ran)."""
import datetime
import pathlib

pathlib.Path("migrated").write_text(f"migrated at {datetime.datetime.now().isoformat(timespec='seconds')}\n")
print("migrations applied")
