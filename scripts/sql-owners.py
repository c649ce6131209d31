#!/usr/bin/env python3
"""Checks that every table of `migrations/` is named in SQL only by the module
that owns it, and that the store's SQL macros stay private to the crate.

Usage: python3 scripts/sql-owners.py        (prints each table's owner and any breach)
       python3 scripts/sql-owners.py --check (exit 1 on a breach; CI runs this)

A table is "named" when a string literal of `src/` says `from`, `join`,
`into`, `update` or `table` followed by it. Tests (`tests/`) may read any table.
"""

import argparse
import pathlib
import re
import sys

ROOT = pathlib.Path(__file__).resolve().parent.parent
SRC = ROOT / "src"

# table -> the one module (file, or folder for a multi-file module) that owns its statements
OWNERS = {
    "loans": "store/loans/",
    "installments": "store/loans/",
    "payments": "store/loans/",
    "outbox": "store/outbox.rs",
    "outbox_purged": "store/outbox.rs",
    "idempotency_keys": "store/idempotency.rs",
    "users": "accounts/users.rs",
    "profiles": "accounts/profiles.rs",
    "refresh_tokens": "auth/sessions.rs",
    "session_changes": "auth/changes.rs",
    "audit_log": "audit/store.rs",
    "audit_chain": "audit/store.rs",
    "notifications": "notifications/store.rs",
    "inbound_dead_letters": "inbound/dead_letters.rs",
    "job_runs": "jobs/runs.rs",
}

STRING = re.compile(r'"((?:[^"\\]|\\.)*)"', re.S)
NAMED = re.compile(r"\b(?:from|join|into|update|table)\s+([a-z_][a-z0-9_]*)", re.I)
CREATED = re.compile(r"create table (?:if not exists )?([a-z_][a-z0-9_]*)", re.I)


def tables_in_migrations():
    tables = set()
    for path in (ROOT / "migrations").rglob("*.sql"):
        tables.update(name.lower() for name in CREATED.findall(path.read_text()))
    return tables


def owned_by(relative, owner):
    return relative.startswith(owner) if owner.endswith("/") else relative == owner


def breaches():
    problems = []
    unowned = tables_in_migrations() - OWNERS.keys()
    problems += [f"table {table} has no owner in scripts/sql-owners.py" for table in sorted(unowned)]
    for path in sorted(SRC.rglob("*.rs")):
        relative = path.relative_to(SRC).as_posix()
        text = path.read_text()
        if "#[macro_export]" in text:
            problems.append(f"src/{relative}: #[macro_export] (SQL macros are crate-private)")
        # Unit tests inside a file may look at any table, as tests/ do.
        code = text.split("#[cfg(test)]")[0]
        for literal in STRING.findall(code):
            for table in NAMED.findall(literal):
                table = table.lower()
                owner = OWNERS.get(table)
                if owner and not owned_by(relative, owner):
                    problems.append(f"src/{relative}: names table {table}, owned by src/{owner}")
    return problems


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true")
    args = parser.parse_args()
    problems = breaches()
    if not args.check:
        for table, owner in sorted(OWNERS.items()):
            print(f"{table:22} src/{owner}")
    for problem in problems:
        print(problem)
    if not problems:
        print("every table is named only by its owner")
    sys.exit(1 if args.check and problems else 0)


if __name__ == "__main__":
    main()
