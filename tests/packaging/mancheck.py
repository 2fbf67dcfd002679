#!/usr/bin/env python3
"""mancheck.py PROG MANPAGE - the man page and --help name the same flags and verbs.

Every --flag that `PROG --help` or `PROG VERB --help` prints is in MANPAGE,
and every --flag in MANPAGE is in one of those texts (issue 15 item 3). The
verbs are the man page's "PROG VERB" subsections; each must be a verb whose
--help works and that the top-level --help names.
"""
import re
import subprocess
import sys

FLAG = re.compile(r"(?<![A-Za-z0-9-])--[a-z][a-z0-9-]*")


def help_text(prog, *args):
    p = subprocess.run([prog, *args, "--help"], stdout=subprocess.PIPE,
                       stderr=subprocess.STDOUT, timeout=30, check=False)
    if p.returncode != 0:
        sys.exit("mancheck: %s %s --help exited %d" % (prog, " ".join(args), p.returncode))
    return p.stdout.decode("utf-8")


def main():
    prog, page = sys.argv[1], sys.argv[2]
    name = prog.rsplit("/", 1)[-1]
    with open(page, encoding="utf-8") as f:
        src = f.read()
    text = src.replace("\\-", "-").replace("\\e", "\\").replace("\\&", "")
    verbs = re.findall(r"^\.SS %s ([a-z-]+)$" % re.escape(name), text, re.M)
    top = help_text(prog)
    helps = [top]
    for v in verbs:
        if not re.search(r"\b%s\b" % re.escape(v), top):
            sys.exit("mancheck: %s: verb %s is in the man page, not in --help" % (page, v))
        helps.append(help_text(prog, v))
    in_help = set(FLAG.findall("\n".join(helps)))
    in_man = set(FLAG.findall(text))
    missing, extra = sorted(in_help - in_man), sorted(in_man - in_help)
    if missing or extra:
        sys.exit("mancheck: %s: flags in --help but not in the man page: %s; in the man page "
                 "but not in --help: %s" % (page, missing or "none", extra or "none"))
    print("%s: %d flags, %d verbs agree with --help" % (page, len(in_help), len(verbs)))


main()
