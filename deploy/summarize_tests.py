#!/usr/bin/env python3
"""Counts test cases from Bazel's JUnit XML files and prints "N passed, M failed, K skipped".

Each test target's test.xml (written by GoogleTest through Bazel) is read, or for a sharded
target each shard's (shard_I_of_N/test.xml); a target or shard without one (it failed to build
or crashed before writing it) counts as one failure. Extra named results (e.g. the CUDA build)
are added as single cases. Exits 1 if anything failed.
"""
import argparse
import os
import re
import sys
import xml.etree.ElementTree as ET


def result_files(base):
    """The test.xml files of the target's latest run: its shards' when it ran sharded (the
    newest sharding, since an output base keeps old runs' directories), else its own."""
    own = os.path.join(base, "test.xml")
    groups = {}
    if os.path.isdir(base):
        for name in os.listdir(base):
            match = re.fullmatch(r"shard_(\d+)_of_(\d+)", name)
            if match:
                groups.setdefault(int(match.group(2)), []).append(os.path.join(base, name, "test.xml"))

    def newest(paths):
        return max((os.path.getmtime(p) for p in paths if os.path.exists(p)), default=-1)

    if not groups:
        return [own]
    total = max(groups, key=lambda n: newest(groups[n]))
    if os.path.exists(own) and os.path.getmtime(own) > newest(groups[total]):
        return [own]
    return [os.path.join(base, f"shard_{i}_of_{total}", "test.xml") for i in range(1, total + 1)]


def count_target(testlogs, target):
    base = os.path.join(testlogs, target.lstrip("/").replace(":", "/"))
    passed = failed = skipped = 0
    failures = []
    for path in result_files(base):
        p, f, s, names = count_file(path, target)
        passed, failed, skipped = passed + p, failed + f, skipped + s
        failures += names
    return passed, failed, skipped, failures


def count_file(path, target):
    if not os.path.exists(path):
        return 0, 1, 0, [f"{target}: no test results in {os.path.dirname(path)} "
                         "(build failure or crash)"]
    try:
        root = ET.parse(path).getroot()
    except ET.ParseError as error:
        return 0, 1, 0, [f"{target}: unreadable {path}: {error}"]
    passed = failed = skipped = 0
    failures = []
    cases = list(root.iter("testcase"))
    for case in cases:
        name = f"{case.get('classname')}.{case.get('name')}"
        if case.find("failure") is not None or case.find("error") is not None:
            failed += 1
            failures.append(f"{target}: {name}")
        elif case.get("result") == "skipped" or case.find("skipped") is not None or \
                case.get("status") == "notrun":
            skipped += 1
        else:
            passed += 1
    if not cases:
        # A test that is not GoogleTest: Bazel writes one suite with its outcome.
        bad = int(root.get("failures", "0")) + int(root.get("errors", "0"))
        if bad:
            failed, failures = 1, [f"{target}: failed"]
        else:
            passed = 1
    return passed, failed, skipped, failures


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--testlogs", required=True)
    parser.add_argument("--extra", action="append", default=[], help="name=passed|failed|skipped")
    parser.add_argument("--bazel_rc", type=int, default=0)
    parser.add_argument("targets", nargs="*")
    args = parser.parse_args()

    passed = failed = skipped = 0
    failures = []
    for target in args.targets:
        p, f, s, names = count_target(args.testlogs, target)
        passed, failed, skipped = passed + p, failed + f, skipped + s
        failures += names
    for extra in args.extra:
        name, _, result = extra.partition("=")
        if result == "passed":
            passed += 1
        elif result == "failed":
            failed += 1
            failures.append(name)
        else:
            skipped += 1
    if not args.targets:
        failed += 1
        failures.append("no test targets found (bazel query failed?)")
    if args.bazel_rc != 0 and failed == 0:
        failed += 1
        failures.append(f"bazel test exited {args.bazel_rc} with no failing test case")
    for name in failures:
        print(f"FAILED: {name}")
    print(f"{passed} passed, {failed} failed, {skipped} skipped")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
