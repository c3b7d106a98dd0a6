"""Which backups a prune keeps: Proxmox's own selection (pve-storage PVE::Storage::prune_mark_backup_group and
its $prune_mark), line for line.

A backup group is one guest's backups (one type and vmid) on a storage. Sorted newest first by ctime, the options
are applied in the order keep-last, keep-hourly, keep-daily, keep-weekly, keep-monthly, keep-yearly. Each option
walks the backups not marked yet: a backup whose period (its own ctime for keep-last; hour, day, ISO week, month
or year, in local time) an earlier option already kept is passed over; the newest backup of each new period is
kept, the others of that period marked for removal, until the option has kept N periods. Whatever no option marked
is removed. keep-all=1, or no option above zero, keeps everything. A backup already marked (protected) is left as
it is.
"""
import datetime
import time

from backend.simulation.pve_schema import NAMED_PROPERTY_FORMATS, parse_property_string

OPTIONS = ("keep-last", "keep-hourly", "keep-daily", "keep-weekly", "keep-monthly", "keep-yearly")


class RetentionError(ValueError):
    """A prune-backups value the server refuses (its validator's words)."""


def parse_retention(text):
    """{option: int} from a prune-backups property string, validated as PVE's validate_prune_backups does."""
    keep = {key: int(value) for key, value in
            parse_property_string(NAMED_PROPERTY_FORMATS["prune-backups"], text or "").items()}
    others = {key: value for key, value in keep.items() if key != "keep-all"}
    if not any(value > 0 for value in others.values()):
        return {"keep-all": 1}
    if keep.get("keep-all"):
        raise RetentionError("keep-all cannot be set together with other options.")
    return others


def format_retention(keep):
    """The property string of a retention, as vzdump logs it."""
    return ",".join(f"{key}={value}" for key, value in sorted(keep.items()))


def period(option, ctime):
    """The period of a backup made at ctime that an option counts in (local time, as the server's localtime)."""
    if option == "keep-last":
        return ctime
    moment = time.localtime(ctime)
    if option == "keep-hourly":
        return moment.tm_hour, moment.tm_mday, moment.tm_mon, moment.tm_year
    if option == "keep-daily":
        return moment.tm_mday, moment.tm_mon, moment.tm_year
    if option == "keep-weekly":
        week = datetime.date(moment.tm_year, moment.tm_mon, moment.tm_mday).isocalendar()
        return week.week, week.year  # strftime %V and %G
    if option == "keep-monthly":
        return moment.tm_mon, moment.tm_year
    return moment.tm_year


def _mark(entries, count, option):
    """$prune_mark: keep the newest unmarked backup of each of the next `count` periods not kept already."""
    if not count:
        return
    already = {period(option, entry["ctime"]) for entry in entries if entry.get("mark") == "keep"}
    newly = set()
    for entry in entries:
        key = period(option, entry["ctime"])
        if entry.get("mark") is not None or key in already:
            continue
        if key not in newly:
            if len(newly) >= count:
                break
            newly.add(key)
            entry["mark"] = "keep"
        else:
            entry["mark"] = "remove"


def mark_backup_group(group, keep):
    """Set `mark` (keep or remove) on each entry ({"ctime", "mark"?...}) of one guest's backups, in place."""
    positive = [key for key, value in keep.items() if key != "keep-all" and value > 0]
    if keep.get("keep-all") or not positive:
        for entry in group:
            if entry.get("mark") and entry["mark"] != "remove":
                continue  # preserve what is known already, such as protected
            entry["mark"] = "keep"
        return
    ordered = sorted(group, key=lambda entry: -entry["ctime"])  # newest first; stable, as Perl's sort
    for option in OPTIONS:
        _mark(ordered, keep.get(option), option)
    for entry in ordered:
        if entry.get("mark") is None:
            entry["mark"] = "remove"
