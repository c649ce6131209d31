#!/usr/bin/env python3
"""Seeds a running loan-tracker through its HTTP API for bench/run.sh.

Registers (or, when they exist, logs in) the borrowers, then for each loan set
lets its borrowers apply and an ADMIN approve, and writes what the wrk scripts
read:

  OUT/users.tsv    email, password, user id, access token  (one line per user)
  OUT/<set>.tsv    loan id, the owner's access token        (one line per loan)

Loan i of a set belongs to user i mod USERS, so every set spreads over all
users. Every answer must be the expected status: anything else stops the seed
with the status and body (no retries, so the data is exactly what was asked).
Standard library only; loopback only; bounded by --deadline-secs.
"""

import argparse
import concurrent.futures
import http.client
import json
import sys
import threading
import time
import urllib.parse

# Longest wait for one answer.
REQUEST_TIMEOUT_SECS = 30
# Terms of every seeded loan but the term; small payments never pay them off.
PRINCIPAL = "100000.00"
ANNUAL_RATE = "6.5"


class SeedError(Exception):
    """An answer that was not the expected one."""


class Client:
    """One keep-alive connection per worker thread."""

    def __init__(self, base):
        parsed = urllib.parse.urlsplit(base)
        if parsed.hostname not in ("127.0.0.1", "localhost", "::1"):
            raise SystemExit(f"seed: refusing a non-loopback base URL {base}")
        self.host = parsed.hostname
        self.port = parsed.port
        self.local = threading.local()

    def call(self, method, path, body=None, token=None, expect=(200,)):
        connection = getattr(self.local, "connection", None)
        if connection is None:
            connection = http.client.HTTPConnection(self.host, self.port, timeout=REQUEST_TIMEOUT_SECS)
            self.local.connection = connection
        headers = {"content-type": "application/json"}
        if token:
            headers["authorization"] = f"Bearer {token}"
        payload = None if body is None else json.dumps(body)
        try:
            connection.request(method, f"/api/v1/{path}", body=payload, headers=headers)
            response = connection.getresponse()
            raw = response.read()
        except (OSError, http.client.HTTPException):
            self.local.connection = None
            connection.close()
            raise
        if response.status not in expect:
            raise SeedError(f"{method} /api/v1/{path}: {response.status} {raw[:500]!r}")
        return json.loads(raw) if raw else None


def user_account(client, index, password, prefix):
    """Registers user `index`, or logs it in when an earlier run registered it."""
    email = f"{prefix}-{index:05d}@example.com"
    body = {"email": email, "username": f"{prefix}-{index:05d}", "password": password}
    try:
        pair = client.call("POST", "auth/register", body, expect=(201,))
    except SeedError as error:
        if " 409 " not in str(error):
            raise
        pair = client.call("POST", "auth/login", {"email": email, "password": password})
    return email, pair["user"]["id"], pair["access_token"]


def approved_loan(client, admin_token, owner_token, term_months):
    """One loan applied for by its owner and approved by the ADMIN."""
    applied = client.call(
        "POST",
        "loans",
        {"principal": PRINCIPAL, "annual_interest_rate": ANNUAL_RATE, "term_months": term_months},
        token=owner_token,
        expect=(201,),
    )
    approved = client.call("POST", f"loans/{applied['id']}/approve", token=admin_token)
    if approved["status"] != "APPROVED":
        raise SeedError(f"loan {applied['id']} approved as {approved['status']}")
    return applied["id"]


def run_all(pool, deadline, jobs):
    """Runs `jobs` (callables) on `pool`, in order of submission; stops at the first failure."""
    futures = [pool.submit(job) for job in jobs]
    results = []
    try:
        for future in futures:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise SeedError("seed deadline passed")
            results.append(future.result(timeout=remaining))
    except BaseException:
        for future in futures:
            future.cancel()
        raise
    return results


def parse_set(text):
    name, count, term = text.split(":")
    if not name.isidentifier() or int(count) < 1 or not 1 <= int(term) <= 480:
        raise argparse.ArgumentTypeError(f"bad loan set {text!r}: NAME:COUNT:TERM_MONTHS")
    return name, int(count), int(term)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--base", required=True, help="service URL, loopback only")
    parser.add_argument("--admin-email", required=True)
    parser.add_argument("--admin-password", required=True)
    parser.add_argument("--users", type=int, required=True)
    parser.add_argument("--password", required=True, help="every user's password")
    parser.add_argument("--prefix", default="bench-user", help="email and username prefix")
    parser.add_argument("--set", dest="sets", type=parse_set, action="append", default=[],
                        help="NAME:COUNT:TERM_MONTHS, repeatable")
    parser.add_argument("--out", required=True, help="directory for the .tsv files")
    parser.add_argument("--workers", type=int, default=8)
    parser.add_argument("--deadline-secs", type=float, default=900)
    args = parser.parse_args()

    started = time.monotonic()
    deadline = started + args.deadline_secs
    client = Client(args.base)
    with concurrent.futures.ThreadPoolExecutor(max_workers=args.workers) as pool:
        admin = client.call("POST", "auth/login", {"email": args.admin_email, "password": args.admin_password})
        admin_token = admin["access_token"]
        users = run_all(pool, deadline, [
            (lambda i=i: user_account(client, i, args.password, args.prefix)) for i in range(args.users)
        ])
        with open(f"{args.out}/users.tsv", "w", encoding="utf-8") as out:
            for email, user_id, token in users:
                out.write(f"{email}\t{args.password}\t{user_id}\t{token}\n")
        for name, count, term in args.sets:
            owners = [users[i % len(users)][2] for i in range(count)]
            loans = run_all(pool, deadline, [
                (lambda token=token: approved_loan(client, admin_token, token, term)) for token in owners
            ])
            with open(f"{args.out}/{name}.tsv", "w", encoding="utf-8") as out:
                for loan_id, token in zip(loans, owners):
                    out.write(f"{loan_id}\t{token}\n")
            print(f"seed: {count} approved {term}-month loans in set {name}", file=sys.stderr)
    print(f"seed: {args.users} users, {sum(s[1] for s in args.sets)} loans in "
          f"{time.monotonic() - started:.1f} s", file=sys.stderr)


if __name__ == "__main__":
    try:
        main()
    except (SeedError, OSError, http.client.HTTPException, concurrent.futures.TimeoutError) as failure:
        print(f"seed failed: {failure}", file=sys.stderr)
        sys.exit(1)
