"""Engine-neutral backups: every model table to one JSON document, and back into any engine."""
import base64
import enum
import json
import uuid
from datetime import date, datetime, time
from decimal import Decimal

import flask_migrate
from sqlalchemy import delete, func, select
from sqlalchemy.exc import DataError, IntegrityError, StatementError
from sqlalchemy.types import TypeDecorator

from backend.errors import Conflict, InvalidState, ValidationFailed
from backend.extensions import db
from backend.models.types import utcnow
from backend.services.database import current_revision, head_revision

FORMAT = "proxmox-paas-backup"
VERSION = 1
CHUNK_SIZE = 1000

# Values that JSON cannot carry natively are written as text and parsed back by the column's Python type.
_PARSERS = {
    uuid.UUID: uuid.UUID,
    datetime: datetime.fromisoformat,
    date: date.fromisoformat,
    time: time.fromisoformat,
    Decimal: Decimal,
    bytes: base64.b64decode,
}


def _to_json(value):
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, datetime):
        # Always six fraction digits, so every engine's copy reads back the same instant.
        return value.isoformat(timespec="microseconds")
    if isinstance(value, (date, time)):
        return value.isoformat()
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, bytes):
        return base64.b64encode(value).decode("ascii")
    if isinstance(value, enum.Enum):
        return value.value
    raise TypeError(f"cannot write {type(value).__name__} to a backup")


def _stored_columns(table):
    """The columns a backup carries: all but the generated ones, which the database computes."""
    return [c for c in table.columns if c.computed is None]


def write_backup(fp):
    """Stream every table of the models to fp as one JSON document; returns row counts per table."""
    counts = {}
    with db.engine.connect() as conn:
        if conn.dialect.name == "postgresql":
            # One snapshot for all tables, so rows that refer to each other agree (MariaDB's default already is).
            conn.execution_options(isolation_level="REPEATABLE READ")
        revision, head = current_revision(conn), head_revision()
        if revision != head:
            raise InvalidState(
                f"the database is at revision {revision or '(none)'} but this code's migrations end at {head}; "
                "back it up with the code version that matches it, or upgrade it first"
            )
        header = {"format": FORMAT, "version": VERSION, "alembic_revision": revision,
                  "created_at": utcnow().isoformat(timespec="microseconds")}
        # The header object is left open: the tables follow it, streamed row by row.
        fp.write(json.dumps(header)[:-1] + ', "tables": {')
        for t, table in enumerate(db.metadata.sorted_tables):
            columns = _stored_columns(table)
            stmt = select(*columns).order_by(*table.primary_key.columns)
            fp.write(("," if t else "") + f"\n{json.dumps(table.name)}: [")
            counts[table.name] = 0
            for row in conn.execute(stmt, execution_options={"yield_per": CHUNK_SIZE}).mappings():
                fp.write(("," if counts[table.name] else "") + "\n" + json.dumps(dict(row), default=_to_json))
                counts[table.name] += 1
            fp.write("\n]")
        fp.write("\n}}\n")
    return counts


def _read_document(fp):
    try:
        document = json.load(fp)
    except ValueError as exc:  # JSONDecodeError and UnicodeDecodeError alike
        raise ValidationFailed(f"not a backup file: it is not valid JSON ({exc})") from None
    if not isinstance(document, dict) or document.get("format") != FORMAT:
        raise ValidationFailed(f"not a backup file: its format is not {FORMAT!r}")
    if document.get("version") != VERSION:
        raise ValidationFailed(f"unsupported backup version {document.get('version')!r}; this code reads {VERSION}")
    tables = document.get("tables")
    if not isinstance(tables, dict) or not all(
        isinstance(rows, list) and all(isinstance(row, dict) for row in rows) for rows in tables.values()
    ):
        raise ValidationFailed("malformed backup: 'tables' must map table names to lists of row objects")
    unknown = sorted(set(tables) - set(db.metadata.tables))
    if unknown:
        raise ValidationFailed(f"the backup has tables this database does not: {', '.join(unknown)}")
    return document


def _parser(column):
    # A TypeDecorator (UTCDateTime) reports no Python type of its own; the type it wraps does.
    column_type = column.type.impl_instance if isinstance(column.type, TypeDecorator) else column.type
    try:
        return _PARSERS.get(column_type.python_type)
    except NotImplementedError:
        return None


def _converted_rows(table, rows):
    """The backup's rows as values for table's columns, checked against its columns."""
    columns = _stored_columns(table)
    expected = {c.name for c in columns}
    parsers = {c.name: p for c in columns if (p := _parser(c))}
    for number, row in enumerate(rows, 1):
        if row.keys() != expected:
            missing, extra = sorted(expected - row.keys()), sorted(row.keys() - expected)
            raise ValidationFailed(
                f"row {number} of {table.name} does not match the table (missing: {missing or 'none'}, "
                f"unknown: {extra or 'none'})"
            )
        values = dict(row)
        for name, parse in parsers.items():
            if values[name] is not None:
                try:
                    values[name] = parse(values[name])
                except (ValueError, TypeError):
                    raise ValidationFailed(
                        f"row {number} of {table.name}: {name} = {values[name]!r} is not a valid value"
                    ) from None
        yield values


def _chunks(iterable, size):
    chunk = []
    for item in iterable:
        chunk.append(item)
        if len(chunk) == size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def reset_sequence(conn, table):
    """On PostgreSQL, move an integer autoincrement key's sequence past the restored ids."""
    column = table.autoincrement_column
    if conn.dialect.name != "postgresql" or column is None:
        return
    # Explicit ids do not advance the sequence, so the next default insert would collide.
    sequence = func.pg_get_serial_sequence(conn.dialect.identifier_preparer.format_table(table), column.name)
    highest = func.max(column)
    conn.execute(select(func.setval(sequence, func.coalesce(highest, 1), highest.is_not(None))))


def restore_backup(fp, force=False):
    """Load a backup into this database in one transaction; returns row counts per table."""
    document = _read_document(fp)
    head = head_revision()
    if document.get("alembic_revision") != head:
        raise InvalidState(
            f"the backup is at revision {document.get('alembic_revision')} but this code's migrations end at "
            f"{head}; restore it with the code version that made it"
        )
    flask_migrate.upgrade()  # a new database gets its schema; a migrated one is left as it is
    db.session.remove()  # nothing of ours may hold locks while rows are replaced
    tables = document["tables"]
    counts = {}
    with db.engine.begin() as conn:
        if current_revision(conn) != head:
            raise InvalidState(f"the database could not be brought to revision {head}")
        occupied = [t.name for t in db.metadata.sorted_tables
                    if conn.scalar(select(1).select_from(t).limit(1)) is not None]
        if occupied and not force:
            raise Conflict(f"the database is not empty ({', '.join(occupied)} hold rows); "
                           "use --force to replace its contents")
        for table in reversed(db.metadata.sorted_tables):
            conn.execute(delete(table))
        for table in db.metadata.sorted_tables:
            counts[table.name] = 0
            try:
                for chunk in _chunks(_converted_rows(table, tables.get(table.name, [])), CHUNK_SIZE):
                    conn.execute(table.insert(), chunk)
                    counts[table.name] += len(chunk)
            except (IntegrityError, DataError) as exc:
                detail = " ".join(str(exc.orig).split())  # drivers' messages span lines
                raise Conflict(f"the database refused the rows of {table.name}: {detail}") from exc
            except StatementError as exc:
                if not isinstance(exc.orig, (ValueError, TypeError)):
                    raise
                # A column type rejected a value before it reached the database (a naive datetime, say).
                raise ValidationFailed(f"a value in {table.name} cannot be stored: {exc.orig}") from exc
            reset_sequence(conn, table)
    return counts
