#!/usr/bin/env python3
"""The parsedmarc peer of bench/reports -mails.

Times parsedmarc's parse_report_email over every report mail of a
directory, in one process, and prints one JSON line as moxparse does:
mails, failures, elapsed_ns, cpu_ns, the sums of the parsed SMTP TLS
reports (policies, sessions, detail_sessions) and first_error.

parsedmarc is installed from PyPI, which some machines cannot reach.
This driver then runs it from source: PYTHONPATH names a checkout of
parsedmarc, one of mail-parser (its MIME parser) and one of
publicsuffixlist, and the Debian packages of its other imports are
installed (bench/reports/README.md lists them). One import that only
serves parsedmarc's mailbox and output side, mailsuite (IMAP, Graph,
SMTP sending), is replaced by a placeholder when it is absent; the
placeholder fails if anything calls it, so a pass that reaches it fails
instead of measuring less work. The parse runs offline (no DNS, no
downloads).

Usage: parsedmarcparse.py -dir DIR [-warmup N]
       parsedmarcparse.py -check (exit 0 when parsedmarc can be imported)
"""

import argparse
import gc
import importlib.abc
import importlib.machinery
import importlib.util
import json
import os
import sys
import time
import types

# Imports parsedmarc makes at load time that the TLS report parse never
# uses (see the module docstring).
PLACEHOLDERS = ("mailsuite",)


class _Placeholder:
    """Stands for any name of a placeholder module; fails when used."""

    def __init__(self, name):
        self._name = name

    def __call__(self, *args, **kwargs):
        raise RuntimeError("parsedmarcparse: placeholder %s called" % self._name)

    def __getattr__(self, attr):
        return _Placeholder(self._name + "." + attr)

    def __mro_entries__(self, bases):
        return (object,)


class _PlaceholderFinder(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    def find_spec(self, fullname, path, target=None):
        if fullname.split(".")[0] not in PLACEHOLDERS:
            return None
        return importlib.machinery.ModuleSpec(fullname, self, is_package=True)

    def create_module(self, spec):
        mod = types.ModuleType(spec.name)
        mod.__path__ = []
        mod.__getattr__ = lambda attr, n=spec.name: _Placeholder(n + "." + attr)
        return mod

    def exec_module(self, module):
        pass


def _install_placeholders():
    missing = [m for m in PLACEHOLDERS if importlib.util.find_spec(m) is None]
    if missing:
        sys.meta_path.append(_PlaceholderFinder())
    return missing


def read_mails(directory):
    """The directory's regular files in name order, as bytes."""
    mails = []
    for name in sorted(os.listdir(directory)):
        path = os.path.join(directory, name)
        if os.path.isfile(path):
            with open(path, "rb") as f:
                mails.append(f.read())
    return mails


def cpu_ns():
    t = os.times()
    return int((t.user + t.system) * 1e9)


def run(parsedmarc, mails):
    """One timed pass; the sums are taken after the clock stops."""
    parsed = [None] * len(mails)
    errors = [None] * len(mails)
    gc.collect()  # the files read are not the pass's garbage
    start, cpu = time.perf_counter_ns(), cpu_ns()
    for i, m in enumerate(mails):
        try:
            parsed[i] = parsedmarc.parse_report_email(
                m, offline=True, always_use_local_files=True
            )
        except Exception as e:  # a failed mail is counted, not fatal
            errors[i] = e
    res = {
        "mails": len(mails),
        "failures": 0,
        "elapsed_ns": time.perf_counter_ns() - start,
        "cpu_ns": cpu_ns() - cpu,
        "policies": 0,
        "sessions": 0,
        "detail_sessions": 0,
    }
    for i, r in enumerate(parsed):
        if errors[i] is None and (r is None or r.get("report_type") != "smtp_tls"):
            errors[i] = ValueError("not an SMTP TLS report: %r" % (r or {}).get("report_type"))
        if errors[i] is not None:
            if res["failures"] == 0:
                res["first_error"] = "mail %d: %s: %s" % (i, type(errors[i]).__name__, errors[i])
            res["failures"] += 1
            continue
        for p in r["report"]["policies"]:
            res["policies"] += 1
            res["sessions"] += p["successful_session_count"] + p["failed_session_count"]
            for d in p.get("failure_details", []):
                res["detail_sessions"] += d["failed_session_count"]
    return res


def main():
    ap = argparse.ArgumentParser(prog="parsedmarcparse.py")
    ap.add_argument("-dir", help="directory of report mails (every file is one mail)")
    ap.add_argument("-check", action="store_true", help="only import parsedmarc: exit 0 if it can be, 69 if not")
    ap.add_argument("-warmup", type=int, default=1, help="untimed passes before the timed one")
    args = ap.parse_args()
    if not args.check and not args.dir:
        ap.error("-dir is required")
    _install_placeholders()
    try:
        import parsedmarc
    except ImportError as e:
        print("parsedmarcparse: cannot import parsedmarc (%s); see bench/reports/README.md" % e, file=sys.stderr)
        sys.exit(69)
    if args.check:
        return
    import logging

    logging.getLogger("parsedmarc").setLevel(logging.CRITICAL)
    mails = read_mails(args.dir)
    for _ in range(args.warmup):
        run(parsedmarc, mails)
    json.dump(run(parsedmarc, mails), sys.stdout)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
