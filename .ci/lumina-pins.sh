#!/usr/bin/env bash
# CI step: the Lumina bridge in an environment held to Lumina's own pins (.ci/lumina-constraints.txt),
# i.e. the versions our package meets when it is installed into Lumina's environment.
#
#   .ci/lumina-pins.sh [PYTEST_ARGS...]
#
# Makes a fresh venv OUTSIDE the checkout (default: in a new temporary folder, removed at the end,
# so two runs at once never share one; set LUMINA_PINS_VENV
# to move it), installs this project with its [dev] extras under the constraints, checks that the
# result is consistent (pip check), then runs the bridge tests (tests/test_lumina_*.py) and the
# watcher's (tests/test_watch_*.py) with LUMINA_DEDUP_REQUIRE_SERVICES=1: PostgreSQL and Redis must
# be there, as in .ci/run. LUMINA_PINS_EXTRA_CONSTRAINTS="FILE..." adds constraint files of your own.
# Exit codes: 0 passed; 1 tests failed or the environment is inconsistent; 3 our requirements cannot
# be installed within Lumina's pins (the resolver's explanation is printed).
set -euo pipefail
cd "$(dirname "$0")/.."

if [ -n "${LUMINA_PINS_VENV:-}" ]; then
    venv=$LUMINA_PINS_VENV
else
    scratch=$(mktemp -d "${TMPDIR:-/tmp}/lumina-dedup-pins.XXXXXX")
    trap 'rm -rf "$scratch"' EXIT
    venv=$scratch/venv
fi
constraints=(-c .ci/lumina-constraints.txt)
for extra in ${LUMINA_PINS_EXTRA_CONSTRAINTS:-}; do constraints+=(-c "$extra"); done

echo "lumina-pins: fresh venv in $venv"
rm -rf "$venv"
"${PYTHON:-python3}" -m venv "$venv"
log="$venv/pip-install.log"
# The same editable install as .ci/run, so the tests import this checkout.
if ! "$venv/bin/pip" install --disable-pip-version-check -e '.[dev]' "${constraints[@]}" >"$log" 2>&1; then
    sed -n '/^ERROR\|conflict/,$p' "$log" | grep -v '^\s*$' | tail -25
    echo "lumina-pins: this project cannot be installed within Lumina's pins (see above; full log: $log)"
    exit 3
fi
"$venv/bin/pip" check --disable-pip-version-check || { echo "lumina-pins: inconsistent environment"; exit 1; }
echo "lumina-pins: installed under Lumina's pins:"
"$venv/bin/pip" list --disable-pip-version-check --format=freeze \
    | grep -iE '^(pillow|watchdog|rich|redis|click|celery|kombu|fastapi|starlette|pydantic|sqlalchemy|psycopg|pywavelets|numpy)(-binary)?==' \
    | tr '\n' ' '
echo

export LUMINA_DEDUP_REQUIRE_SERVICES=1
"$venv/bin/python" -m pytest tests/test_lumina_*.py tests/test_watch_*.py "$@"
