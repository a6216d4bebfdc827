#!/usr/bin/env python3
"""Check an mpfarm JUnit XML report the way CI readers will see it.

Usage:
    check_junit.py REPORT.xml [--expect BOARD:SUITE:NAME:VERDICT ...] [--min-tests N]

The report must be readable by the Jenkins junit plugin, GitLab's JUnit report
artifacts and the GitHub reporters (dorny/test-reporter,
mikepenz/action-junit-report, EnricoMi/publish-unit-test-result-action). They
agree on a small dialect; these are the rules checked here:

  * the file is well-formed XML and the root element is <testsuites>;
  * the root's tests/failures/errors/skipped, when present, are the sums over
    its <testsuite> children, and its time has the shape of a duration;
  * every <testsuite> has a name and integer tests/failures/errors (skipped
    optional) equal to what its <testcase> children say; time is seconds with
    a '.' decimal point ("1.500", never "1,500"); timestamp, if present, is
    ISO 8601 without a time zone ("2026-11-21T18:45:40");
  * a testsuite's children come in the order <properties>, <testcase>...,
    <system-out>, <system-err>; every <property> has a name and a value;
  * every <testcase> has a non-empty classname and name, unique within its
    suite, a well-formed time, and at most one of <failure>, <error>,
    <skipped>; its other children are <system-out>/<system-err> only.

Expectations name a case by board (the testsuite name), suite (the classname
without its ".BOARD" suffix) and test name; the verdict is pass, fail, error or
skip. A NAME may contain ':'; BOARD and SUITE may not.

Prints every problem found, then exits 1; prints a one-line summary and exits
0 when all is well. Standard library only.
"""

import argparse
import datetime
import re
import sys
import xml.etree.ElementTree as ET

TIME_RE = re.compile(r"^[0-9]+(\.[0-9]+)?$")
TIMESTAMP_RE = re.compile(r"^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}$")

# Child order inside a <testsuite>: each child's rank must not go down.
SUITE_CHILD_RANK = {"properties": 0, "testcase": 1, "system-out": 2, "system-err": 3}
CASE_OUTCOMES = ("failure", "error", "skipped")
CASE_OTHER_CHILDREN = ("system-out", "system-err", "properties")

VERDICT_OF_OUTCOME = {None: "pass", "failure": "fail", "error": "error", "skipped": "skip"}
COUNTER_OF_VERDICT = {"fail": "failures", "error": "errors", "skip": "skipped"}
VERDICT_ALIASES = {
    "pass": "pass", "passed": "pass", "ok": "pass",
    "fail": "fail", "failed": "fail", "failure": "fail",
    "error": "error", "errored": "error",
    "skip": "skip", "skipped": "skip",
}


class Report:
    """Collects problems; each is one line naming where it was found."""

    def __init__(self, path):
        self.path = path
        self.problems = []

    def problem(self, where, what):
        self.problems.append(f"{self.path}: {where}: {what}")


def parse_expect(text):
    """'BOARD:SUITE:NAME:VERDICT' -> ((board, suite, name), verdict)."""
    head, sep, verdict = text.rpartition(":")
    parts = head.split(":", 2) if sep else []
    if len(parts) != 3 or not all(parts):
        raise argparse.ArgumentTypeError(
            f"--expect {text!r}: want BOARD:SUITE:NAME:VERDICT")
    key = verdict.strip().lower()
    if key not in VERDICT_ALIASES:
        raise argparse.ArgumentTypeError(
            f"--expect {text!r}: verdict must be pass, fail, error or skip")
    return (parts[0], parts[1], parts[2]), VERDICT_ALIASES[key]


def int_attr(rep, where, elem, name, required):
    """The attribute as a non-negative int, or None (problem recorded if bad)."""
    value = elem.get(name)
    if value is None:
        if required:
            rep.problem(where, f"missing attribute {name}")
        return None
    if not value.isdigit():
        rep.problem(where, f"{name}={value!r} is not a non-negative integer")
        return None
    return int(value)


def check_time(rep, where, elem):
    value = elem.get("time")
    if value is not None and not TIME_RE.match(value):
        rep.problem(where, f"time={value!r} is not seconds with a '.' decimal point")


def check_timestamp(rep, where, elem):
    value = elem.get("timestamp")
    if value is None:
        return
    if not TIMESTAMP_RE.match(value):
        rep.problem(where, f"timestamp={value!r} is not YYYY-MM-DDTHH:MM:SS (no zone)")
        return
    try:
        datetime.datetime.strptime(value, "%Y-%m-%dT%H:%M:%S")
    except ValueError:
        rep.problem(where, f"timestamp={value!r} is not a real date and time")


def case_verdict(rep, where, case):
    """pass/fail/error/skip from the case's children (problems recorded)."""
    outcomes = [child.tag for child in case if child.tag in CASE_OUTCOMES]
    for child in case:
        if child.tag not in CASE_OUTCOMES and child.tag not in CASE_OTHER_CHILDREN:
            rep.problem(where, f"unexpected child <{child.tag}>")
    if len(outcomes) > 1:
        rep.problem(where, f"more than one outcome: {', '.join(outcomes)}")
    return VERDICT_OF_OUTCOME[outcomes[0] if outcomes else None]


def check_properties(rep, where, props):
    for prop in props:
        if prop.tag != "property":
            rep.problem(where, f"unexpected <{prop.tag}> in <properties>")
        elif prop.get("name") is None or prop.get("value") is None:
            rep.problem(where, "a <property> lacks name or value")


def check_child_order(rep, where, suite):
    rank = -1
    seen_properties = 0
    for child in suite:
        if child.tag not in SUITE_CHILD_RANK:
            rep.problem(where, f"unexpected child <{child.tag}>")
            continue
        if child.tag == "properties":
            seen_properties += 1
        if SUITE_CHILD_RANK[child.tag] < rank:
            rep.problem(where, f"<{child.tag}> comes after a later element "
                               "(order: properties, testcase, system-out, system-err)")
        rank = max(rank, SUITE_CHILD_RANK[child.tag])
    if seen_properties > 1:
        rep.problem(where, "more than one <properties>")


def check_suite(rep, index, suite, verdicts):
    """Check one <testsuite>; record each case's verdict in verdicts.
    Returns its counted totals as a dict."""
    board = suite.get("name")
    where = f"testsuite #{index} {board!r}" if board else f"testsuite #{index}"
    if not board:
        rep.problem(where, "missing or empty name")
    check_time(rep, where, suite)
    check_timestamp(rep, where, suite)
    check_child_order(rep, where, suite)
    for props in suite.findall("properties"):
        check_properties(rep, where, props)

    counted = {"tests": 0, "failures": 0, "errors": 0, "skipped": 0}
    seen = set()
    for case in suite.findall("testcase"):
        classname, name = case.get("classname"), case.get("name")
        cwhere = f"{where} testcase {classname}/{name}"
        if not classname:
            rep.problem(cwhere, "missing or empty classname")
        if not name:
            rep.problem(cwhere, "missing or empty name")
        if (classname, name) in seen:
            rep.problem(cwhere, "duplicate classname and name in this testsuite")
        seen.add((classname, name))
        check_time(rep, cwhere, case)

        verdict = case_verdict(rep, cwhere, case)
        counted["tests"] += 1
        if verdict in COUNTER_OF_VERDICT:
            counted[COUNTER_OF_VERDICT[verdict]] += 1

        suite_name = classname or ""
        if board and suite_name.endswith("." + board):
            suite_name = suite_name[: -len(board) - 1]
        verdicts[(board or "", suite_name, name or "")] = verdict

    for attr, required in (("tests", True), ("failures", True), ("errors", True),
                           ("skipped", False)):
        declared = int_attr(rep, where, suite, attr, required)
        if declared is not None and declared != counted[attr]:
            rep.problem(where, f"{attr}={declared} but its testcases say {counted[attr]}")
    return counted


def check_report(path, expects, min_tests):
    rep = Report(path)
    try:
        root = ET.parse(path).getroot()
    except (ET.ParseError, OSError) as exc:
        rep.problem("parse", str(exc))
        return rep.problems, None

    if root.tag != "testsuites":
        rep.problem("root", f"root element is <{root.tag}>, want <testsuites>")
        return rep.problems, None
    check_time(rep, "testsuites", root)

    verdicts = {}
    totals = {"tests": 0, "failures": 0, "errors": 0, "skipped": 0}
    suites = 0
    for child in root:
        if child.tag != "testsuite":
            rep.problem("testsuites", f"unexpected child <{child.tag}>")
            continue
        counted = check_suite(rep, suites, child, verdicts)
        suites += 1
        for key in totals:
            totals[key] += counted[key]

    for attr in totals:
        declared = int_attr(rep, "testsuites", root, attr, False)
        if declared is not None and declared != totals[attr]:
            rep.problem("testsuites", f"{attr}={declared} but its testsuites add up to "
                                      f"{totals[attr]}")

    if min_tests is not None and totals["tests"] < min_tests:
        rep.problem("testsuites", f"{totals['tests']} tests, expected at least {min_tests}")

    for (board, suite, name), want in expects:
        got = verdicts.get((board, suite, name))
        if got is None:
            rep.problem("expect", f"no testcase {board}:{suite}:{name}")
        elif got != want:
            rep.problem("expect", f"{board}:{suite}:{name} is {got}, expected {want}")

    return rep.problems, (suites, totals)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("report", help="JUnit XML file written by mpfarm")
    ap.add_argument("--expect", action="append", default=[], type=parse_expect,
                    metavar="BOARD:SUITE:NAME:VERDICT",
                    help="require this verdict (pass, fail, error, skip); repeatable")
    ap.add_argument("--min-tests", type=int, metavar="N",
                    help="require at least N testcases in all")
    args = ap.parse_args(argv)

    problems, summary = check_report(args.report, args.expect, args.min_tests)
    if problems:
        for line in problems:
            print(line)
        print(f"{args.report}: {len(problems)} problem(s)", file=sys.stderr)
        return 1
    suites, t = summary
    print(f"{args.report}: ok: {suites} testsuite(s), {t['tests']} tests, "
          f"{t['failures']} failures, {t['errors']} errors, {t['skipped']} skipped")
    return 0


if __name__ == "__main__":
    sys.exit(main())
