"""Listing and stats at depth: 100000 deployments in PostgreSQL, timed through the real app.

Prints figures, passes or fails nothing. Usage:
    python bench/bench_listing.py [--rows 100000] [--repeat 30] [--url postgresql://...]
The database named in --url (default: BENCH_DATABASE_URL, else the local 'paas_bench') is wiped.
"""
import argparse
import os
import statistics
import sys
import time
from datetime import timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from sqlalchemy import create_engine, select, text
from sqlalchemy.engine import make_url

from app import create_app, db
from backend.models import Deployment
from backend.models.types import utcnow
from backend.services.deployments import _encode_cursor
from bench.common import fresh_schema_with_admin, insert_deployments

DEFAULT_URL = "postgresql://postgres@127.0.0.1:5432/paas_bench"
PER_PAGE = 50


def ensure_database(url):
    """Create the benchmark database if the server does not have it yet."""
    parsed = make_url(url)
    admin = create_engine(parsed.set(database="postgres"), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        exists = conn.scalar(text("SELECT 1 FROM pg_database WHERE datname = :n"), {"n": parsed.database})
        if not exists:
            conn.execute(text(f'CREATE DATABASE "{parsed.database}"'))
    admin.dispose()


def load(app, rows):
    """Rebuild the schema with the migrations, make an admin and bulk-insert rows deployments of theirs;
    returns the admin's token."""
    with app.app_context():
        admin, token = fresh_schema_with_admin()
        insert_deployments(rows, utcnow() - timedelta(days=365), user_id=admin.id)
    return token


def timed(client, url, repeat):
    """Median and p95 in ms of repeat GETs of url (after two warm-up calls)."""
    for _ in range(2):
        assert client.get(url).status_code == 200
    samples = []
    for _ in range(repeat):
        began = time.perf_counter()
        response = client.get(url)
        samples.append((time.perf_counter() - began) * 1000)
        assert response.status_code == 200, response.get_json()
    samples.sort()
    return statistics.median(samples), samples[int(len(samples) * 0.95) - 1]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", default=os.environ.get("BENCH_DATABASE_URL", DEFAULT_URL))
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=30)
    args = parser.parse_args()

    ensure_database(args.url)
    app = create_app("testing", SQLALCHEMY_DATABASE_URI=args.url)
    began = time.perf_counter()
    token = load(app, args.rows)
    print(f"loaded {args.rows} deployments in {time.perf_counter() - began:.1f} s")

    depth_page = args.rows // PER_PAGE  # 2000 for 100000 rows: the last full page
    with app.app_context():
        # The cursor a client holds after walking to that page: the last row of the page before it.
        row = db.session.scalars(
            select(Deployment).where(Deployment.deleted_at.is_(None))
            .order_by(Deployment.created_at.desc(), Deployment.id.desc())
            .offset((depth_page - 1) * PER_PAGE - 1).limit(1)
        ).one()
        cursor = _encode_cursor("-created_at", row)
        client = app.test_client()
        client.environ_base["HTTP_AUTHORIZATION"] = f"Bearer {token}"
        by_page = f"/api/deployments?per_page={PER_PAGE}&page={depth_page}"
        by_cursor = f"/api/deployments?per_page={PER_PAGE}&cursor={cursor}"
        assert client.get(by_page).get_json()["deployments"] == client.get(by_cursor).get_json()["deployments"]
        figures = {
            "first page": timed(client, f"/api/deployments?per_page={PER_PAGE}", args.repeat),
            f"page {depth_page} by number": timed(client, by_page, args.repeat),
            f"page {depth_page} by cursor": timed(client, by_cursor, args.repeat),
            "stats": timed(client, "/api/stats", args.repeat),
        }
        db.engine.dispose()

    print(f"\nGET /api/deployments, per_page={PER_PAGE}, {args.rows} rows, {args.repeat} runs each (ms)")
    print(f"{'request':<26}{'median':>10}{'p95':>10}")
    for name, (median, p95) in figures.items():
        print(f"{name:<26}{median:>10.2f}{p95:>10.2f}")
    first = figures["first page"][0]
    print(f"\ndeep/first by number: {figures[f'page {depth_page} by number'][0] / first:.2f}")
    print(f"deep/first by cursor: {figures[f'page {depth_page} by cursor'][0] / first:.2f}  (target <= 1.2)")


if __name__ == "__main__":
    main()
