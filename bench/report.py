#!/usr/bin/env python3
"""Turns bench/run.sh's result rows into the Markdown report.

Each row is one line of tab-separated key=value fields (see record_row in
run.sh). Prints the report on stdout.
"""

import argparse

BACKEND_TITLES = {"postgres": "PostgreSQL + NATS JetStream", "embedded": "Embedded default (SQLite, in-process bus)"}


def read_rows(path):
    rows = []
    with open(path, encoding="utf-8") as source:
        for line in source:
            line = line.rstrip("\n")
            if line:
                rows.append(dict(field.split("=", 1) for field in line.split("\t")))
    return rows


def number(row, key):
    try:
        return float(row.get(key, ""))
    except ValueError:
        return None


def fmt(value, digits=1):
    if value is None:
        return "-"
    return f"{value:,.{digits}f}"


def errors(row):
    non2xx = int(row.get("non2xx", "0") or 0)
    if non2xx == 0:
        return "0"
    not_ok = [s for s in row.get("statuses", "").split(",") if s and not s.startswith("2")]
    return f"**{non2xx:,}** ({', '.join(not_ok)})"


def ratio(row):
    ok, tps = number(row, "ok_rps"), number(row, "tps")
    return f"{ok / tps:.2f}×" if ok is not None and tps else "-"


def throughput_table(rows):
    lines = [
        "| scenario | c | req/s | 2xx/s | p50 ms | p99 ms | non-2xx | socket errors "
        "| pgbench -N tps | 2xx/s ÷ pgbench | service cores | machine cores busy |",
        "|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|",
    ]
    for row in rows:
        sockets = row.get("socket_errors", "0")
        lines.append(
            f"| {row['desc']} (`{row['id']}`) | {row['c']} | {fmt(number(row, 'rps'))} "
            f"| {fmt(number(row, 'ok_rps'))} | {fmt(number(row, 'p50_ms'), 2)} | {fmt(number(row, 'p99_ms'), 2)} "
            f"| {errors(row)} | {sockets if sockets == '0' else f'**{sockets}**'} "
            f"| {fmt(number(row, 'tps'), 0)} | {ratio(row)} "
            f"| {fmt(number(row, 'service_cores'), 2)} | {fmt(number(row, 'machine_cores'), 2)} |"
        )
    return lines


def flow_table(rows):
    lines = [
        "| scenario | outbox_pending peak | outbox_pending at end | outbox drained (s) "
        "| audit caught up (s) | notifications caught up (s) | RSS peak MiB | RSS after MiB |",
        "|---|--:|--:|--:|--:|--:|--:|--:|",
    ]
    for row in rows:
        lines.append(
            f"| `{row['id']}` | {row.get('outbox_peak', '-')} | {row.get('outbox_end', '-')} "
            f"| {row.get('outbox_s', '-')} | {row.get('audit_s', '-')} | {row.get('notif_s', '-')} "
            f"| {row.get('rss_peak_mib', '-')} | {row.get('rss_end_mib', '-')} |"
        )
    return lines


def comparisons(by_id):
    lines = []

    def pair(label, a_id, b_id, key, better_low=False):
        a, b = by_id.get(a_id), by_id.get(b_id)
        if not a or not b:
            return
        a_value, b_value = number(a, key), number(b, key)
        if a_value is None or not b_value:
            return
        unit = "ms" if key.endswith("_ms") else "2xx/s"
        lines.append(f"- {label}: {fmt(a_value, 2 if better_low else 1)} vs {fmt(b_value, 2 if better_low else 1)} "
                     f"{unit} = **{a_value / b_value:.2f}×** (`{a_id}` ÷ `{b_id}`)")

    pair("GET p99 during the login storm vs quiet", "get_storm", "get_quiet", "p99_ms", better_low=True)
    pair("12-month vs 360-month loans, payments c=64", "short_pay_c64", "pay_c64", "ok_rps")
    pair("history vs the same loans before the fill, payments c=64", "history_pay_c64", "history_base_c64", "ok_rps")
    pair("history loans vs the base set, payments c=64", "history_pay_c64", "pay_c64", "ok_rps")
    pair("with Idempotency-Key vs without, payments c=64", "pay_idem_c64", "pay_c64", "ok_rps")
    return lines


def clean(row):
    """No error answers and no socket errors (true of anything not a result row)."""
    if not isinstance(row, dict):
        return True
    return row.get("non2xx") == "0" and row.get("socket_errors") == "0"


def seconds(row, key):
    value = row.get(key, "-")
    return None if value.startswith(">") or value in ("-", "") else float(value)


def targets(by_backend, final_rss):
    """Issue 12's targets, judged on this run: (target, measured, verdict)."""
    pg = by_backend.get("postgres", {})
    emb = by_backend.get("embedded", {})
    judged = []

    def judge(target, rows, measured, met):
        if not all(rows):
            judged.append((target, "not measured in this run", "-"))
            return
        verdict = "met" if met() else "not met"
        if not all(clean(row) for row in rows):
            verdict += " (errors in the run)" if verdict == "met" else ", with errors"
        judged.append((target, measured(), verdict))

    pay, tps_row = pg.get("pay_c64"), pg.get("pay_c64")
    judge("payments c=64 ≥ 1.0× pgbench -N (c=64)", [pay],
          lambda: f"{fmt(number(pay, 'ok_rps'))} 2xx/s vs {fmt(number(tps_row, 'tps'), 0)} tps = {ratio(pay)}",
          lambda: number(pay, "ok_rps") >= number(tps_row, "tps"))
    judge("payments c=64: p99 ≤ 20 ms", [pay], lambda: f"{fmt(number(pay, 'p99_ms'), 2)} ms",
          lambda: number(pay, "p99_ms") <= 20)
    judge("outbox_pending drains within 2 s of the end (payments c=64)", [pay],
          lambda: f"{pay.get('outbox_s')} s (peak {pay.get('outbox_peak')}, {pay.get('outbox_end')} at the end)",
          lambda: seconds(pay, "outbox_s") is not None and seconds(pay, "outbox_s") <= 2)
    judge("audit and notifications within 5 s (payments c=64)", [pay],
          lambda: f"audit {pay.get('audit_s')} s, notifications {pay.get('notif_s')} s",
          lambda: all(seconds(pay, k) is not None and seconds(pay, k) <= 5 for k in ("audit_s", "notif_s")))
    for other, base, label in (("history_pay_c64", "history_base_c64", "payments already on every loan vs none, same loans"),
                               ("short_pay_c64", "pay_c64", "12-month vs 360-month loans")):
        a, b = pg.get(other), pg.get(base)
        judge(f"{label}: within 10 %", [a, b],
              lambda a=a, b=b: f"{fmt(number(a, 'ok_rps'))} vs {fmt(number(b, 'ok_rps'))} 2xx/s "
                               f"({number(a, 'ok_rps') / number(b, 'ok_rps') - 1:+.0%})",
              lambda a=a, b=b: abs(number(a, "ok_rps") / number(b, "ok_rps") - 1) <= 0.10)
    hot = pg.get("hot_c16")
    judge("one hot loan c=16 ≥ 2,000 payments/s", [hot], lambda: f"{fmt(number(hot, 'ok_rps'))} 2xx/s",
          lambda: number(hot, "ok_rps") >= 2000)
    get = pg.get("get_c64")
    judge("GET loan c=64 (PostgreSQL) ≥ 20,000 req/s, p99 ≤ 5 ms", [get],
          lambda: f"{fmt(number(get, 'ok_rps'))} 2xx/s, p99 {fmt(number(get, 'p99_ms'), 2)} ms",
          lambda: number(get, "ok_rps") >= 20000 and number(get, "p99_ms") <= 5)
    for target, ids, floor in (("embedded payments ≥ 5,000/s", ("pay_c16", "pay_c64"), 5000),
                               ("embedded GET ≥ 20,000/s", ("get_c16", "get_c64"), 20000)):
        rows = [emb.get(i) for i in ids if emb.get(i)]
        best = max(rows, key=lambda row: number(row, "ok_rps"), default=None)
        judge(target + " (best of c=16, c=64)", [best],
              lambda best=best: f"{fmt(number(best, 'ok_rps'))} 2xx/s (`{best['id']}`)",
              lambda best=best, floor=floor: number(best, "ok_rps") >= floor)
    login = pg.get("login_c16")
    judge("login c=16 ≥ 40/s", [login], lambda: f"{fmt(number(login, 'ok_rps'))} 2xx/s",
          lambda: number(login, "ok_rps") >= 40)
    storm, quiet = pg.get("get_storm"), pg.get("get_quiet")
    judge("GET p99 during a login storm ≤ 3× quiet", [storm, quiet],
          lambda: f"{fmt(number(storm, 'p99_ms'), 2)} vs {fmt(number(quiet, 'p99_ms'), 2)} ms "
                  f"= {number(storm, 'p99_ms') / number(quiet, 'p99_ms'):.1f}×",
          lambda: number(storm, "p99_ms") <= 3 * number(quiet, "p99_ms"))
    rss = final_rss.get("postgres")
    judge("RSS ≤ 300 MiB after the whole benchmark (PostgreSQL)", [rss],
          lambda: f"{rss} MiB", lambda: int(rss) <= 300)
    judged.append(("100,000 live loan actors (12-month, a few payments) ≤ 500 MiB",
                   "not measured by bench/run.sh", "-"))
    return judged


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("rows")
    parser.add_argument("--title", required=True)
    parser.add_argument("--machine", required=True)
    parser.add_argument("--versions", required=True)
    parser.add_argument("--settings", required=True)
    parser.add_argument("--note", action="append", default=[])
    parser.add_argument("--final-rss", action="append", default=[], help="BACKEND=MiB after the run")
    args = parser.parse_args()

    rows = read_rows(args.rows)
    out = [f"# {args.title}", "", f"- machine: {args.machine}", f"- versions: {args.versions}",
           f"- run: {args.settings}"]
    for backend in dict.fromkeys(row["backend"] for row in rows):
        mine = [row for row in rows if row["backend"] == backend]
        out += ["", f"## {BACKEND_TITLES.get(backend, backend)}", ""]
        out += throughput_table(mine)
        writes = [row for row in mine if row.get("kind") == "write"]
        if writes:
            out += ["", "After each payment scenario (drain times from the end of the load):", ""]
            out += flow_table(writes)
        derived = comparisons({row["id"]: row for row in mine})
        if derived:
            out += [""] + derived
    by_backend = {}
    for row in rows:
        by_backend.setdefault(row["backend"], {})[row["id"]] = row
    final_rss = dict(item.split("=", 1) for item in args.final_rss)
    out += ["", "## Targets of issue 12 in this run", "", "| target | measured | verdict |", "|---|---|---|"]
    out += [f"| {target} | {measured} | {verdict} |" for target, measured, verdict in targets(by_backend, final_rss)]
    if args.note:
        out += ["", "## Notes", ""] + [f"- {note}" for note in args.note]
    print("\n".join(out))


if __name__ == "__main__":
    main()
