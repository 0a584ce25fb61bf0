"""Drill ``orm-overfetch``: a list view that loads every row and column it does not show.

The over-fetching list (``/books-overfetch/``: every book, ``select_related()`` of everything, all
columns) runs under load; ``toolkit audit queries`` must rank its statement first; the scoped list
(``/books/``: one page, ``only()`` the shown fields) is measured against it under the same load.
"""

from __future__ import annotations

import time

from lab.drills.harness import Lab, toolkit
from lab.drills.http_load import load
from lab.drills.report import DrillReport, ratio

NAME = "orm-overfetch"
TITLE = "an unscoped list view fetches every row and column"
TABLE = "shop_book"


def run(lab: Lab, seconds: float) -> DrillReport:
    """Load the faulty view, audit, load the scoped view; return the report."""
    report = DrillReport(NAME, TITLE)
    node = lab.node("wsgi")
    # Start from empty statistics so the ranking reflects this load (lab only: the superuser, on the
    # database host over SSH).
    lab.superuser_sql("SELECT pg_stat_statements_reset();")
    faulty = load(f"{node.url}/books-overfetch/", 4, seconds, timeout_s=30)
    report.measurements["overfetching list"] = faulty.to_dict()
    started = time.monotonic()
    code, doc = toolkit(["audit", "queries", "-i", lab.inventory, "--format", "json", "--top", "5"])
    took = time.monotonic() - started
    findings = [f for f in doc.get("findings", []) if f.get("id") == "orm.overfetching_query"]
    top = findings[0] if findings else {}
    evidence = top.get("evidence", {})
    statement = str(evidence.get("statement", ""))
    report.detection = {
        "tool": "toolkit audit queries",
        "exit": code,
        "seconds": round(took, 2),
        "top_statement": statement[:160],
        "rows_per_call": evidence.get("rows_per_call"),
        "remedy": top.get("remedy"),
    }
    scoped = load(f"{node.url}/books/", 4, seconds, timeout_s=30)
    report.measurements["scoped list"] = scoped.to_dict()
    report.remediation = {"change": "the scoped view: .select_related('author').only(...)[:50]"}
    report.claim(
        f"audit queries ranks the over-fetching {TABLE} statement first",
        TABLE in statement and code != 0,
        f"top: {statement[:80]!r} ({evidence.get('rows_per_call')} rows/call), exit {code}, {took:.1f} s",
    )
    report.claim(
        "the scoped list serves more requests per second than the over-fetching one",
        scoped.rps > faulty.rps,
        f"{scoped.rps:.0f} vs {faulty.rps:.0f} req/s ({ratio(scoped.rps, faulty.rps):.1f}x); "
        f"p99 {scoped.p99_ms:.0f} vs {faulty.p99_ms:.0f} ms",
    )
    report.claim(
        "neither run failed a request",
        faulty.errors == 0 and scoped.errors == 0,
        f"errors {faulty.errors} and {scoped.errors}",
    )
    return report
