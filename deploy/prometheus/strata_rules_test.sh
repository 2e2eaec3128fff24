#!/bin/bash
# Checks the alerting rules with promtool: they parse (`check rules`), every alert fires and stays
# quiet where strata-rules.test.yml says (`test rules`), the example prometheus.yml is valid, and
# the unit tests catch a broken rule (each alert made to never fire, then to always fire, must
# fail them). Skipped, with the reason, only when promtool (Debian package prometheus) is not
# installed.
set -euo pipefail

here="deploy/prometheus"
[[ -f "$here/strata-rules.yml" ]] || here="$(dirname "$0")"

skip() {
  echo "SKIPPED: $1"
  if [[ -n "${XML_OUTPUT_FILE:-}" ]]; then
    cat >"$XML_OUTPUT_FILE" <<XML
<?xml version="1.0" encoding="UTF-8"?>
<testsuites><testsuite name="strata_rules_test" tests="1" failures="0" skipped="1">
<testcase classname="strata_rules_test" name="promtool"><skipped message="$1"/></testcase>
</testsuite></testsuites>
XML
  fi
  exit 0
}

command -v promtool >/dev/null 2>&1 || skip "promtool is not installed (Debian package prometheus)"

promtool check rules "$here/strata-rules.yml"
promtool test rules "$here/strata-rules.test.yml"
promtool check config "$here/prometheus.yml"

# A broken rule must fail the unit tests: each alert's expression replaced by one that never
# fires, then by one that always fires (the tests hold a firing and a quiet case for every alert).
work="${TEST_TMPDIR:-$(mktemp -d)}/broken"
mkdir -p "$work"
cp "$here/strata-rules.test.yml" "$work/"
# strata-rules.yml with alert $1's expr (one line or a block) replaced by $2.
replace_expr() {
  awk -v alert="$1" -v expr="$2" '
    $0 ~ "^ *- alert: " alert "$" { mine = 1 }
    mine && /^ *expr:/ { sub(/expr:.*/, "expr: " expr); print; skipping = 1; mine = 0; next }
    skipping && /^ *(for|labels|annotations):/ { skipping = 0 }
    skipping { next }
    { print }
  ' "$here/strata-rules.yml"
}
alerts=$(sed -n 's/^ *- alert: *\([A-Za-z0-9_]*\) *$/\1/p' "$here/strata-rules.yml")
[[ -n "$alerts" ]] || { echo "FAIL: no alerts in strata-rules.yml" >&2; exit 1; }
for alert in $alerts; do
  for broken in "vector(1) == 2" "vector(1)"; do
    replace_expr "$alert" "$broken" >"$work/strata-rules.yml"
    if cmp -s "$here/strata-rules.yml" "$work/strata-rules.yml"; then
      echo "FAIL: could not replace the expression of $alert" >&2
      exit 1
    fi
    promtool check rules "$work/strata-rules.yml" >/dev/null
    if promtool test rules "$work/strata-rules.test.yml" >"$work/out.txt" 2>&1; then
      echo "FAIL: the unit tests pass with $alert's expression replaced by '$broken'" >&2
      exit 1
    fi
  done
  echo "ok: the unit tests catch $alert never firing and always firing"
done
echo "PASS"
