#!/usr/bin/env bash
# Runs every fuzz target of the module, one after another, each for
# FUZZTIME (default 20s), and prints a table of the executions per target
# at the end. Targets are found by name: every `func FuzzXxx(f *testing.F)`
# in a _test.go file. A target that finds a failure stops the run; the
# failing input is in <package>/testdata/fuzz/FuzzXxx/ (commit it as a
# seed once the code is fixed).
#
#   FUZZTIME=1m ./scripts/fuzz.sh                 # every target, 1 minute each
#   ./scripts/fuzz.sh FuzzDecode FuzzEndpoints    # only these
#
# FUZZMINIMIZETIME (default 1s) bounds the minimisation of each new
# interesting input, which for the slower targets (a real store, bcrypt)
# would otherwise take most of a short run.
set -euo pipefail
cd "$(dirname "$0")/.."

fuzztime=${FUZZTIME:-20s}
minimize=${FUZZMINIMIZETIME:-1s}
logdir=$(mktemp -d)
trap 'rm -rf "$logdir"' EXIT

# "<package dir> <target>" for every fuzz target.
targets=$(git grep -n --untracked -E '^func Fuzz[A-Za-z0-9_]+\(f \*testing\.F\)' -- '*_test.go' |
	sed -E 's#^(.*)/[^/]+_test\.go:[0-9]+:func (Fuzz[A-Za-z0-9_]+)\(.*#\1 \2#; s#^[^/ ]+_test\.go:[0-9]+:func (Fuzz[A-Za-z0-9_]+)\(.*#. \1#' |
	sort)
if [ $# -gt 0 ]; then
	want=" $* "
	# An if, not `[[ ]] && echo`: a last target that is not asked for
	# would end the loop with status 1, which set -e turns into a silent
	# exit of the script.
	targets=$(echo "$targets" | while read -r dir name; do
		if [[ $want == *" $name "* ]]; then echo "$dir $name"; fi
	done)
fi
[ -n "$targets" ] || { echo "no fuzz targets found" >&2; exit 1; }

summary=()
while read -r dir name; do
	echo "== $name in ./$dir for $fuzztime" >&2
	log="$logdir/$name.log"
	note=""
	if ! go test -run '^$' -fuzz "^$name\$" -fuzztime "$fuzztime" -fuzzminimizetime "$minimize" "./$dir" 2>&1 | tee "$log" >&2; then
		# Go before 1.27 may end a timed run with a bare "context deadline
		# exceeded" and no failing input (golang/go#75804): the time ran
		# out, nothing was found.
		if grep -q 'Failing input written' "$log" || ! grep -q 'context deadline exceeded' "$log"; then
			echo "FAIL: $name in ./$dir (the failing input is under ./$dir/testdata/fuzz/$name/)" >&2
			exit 1
		fi
		note="(ended by golang/go#75804, nothing found)"
	fi
	# No "execs:" line (a run that ended within the baseline) is "?", not
	# a failed grep that pipefail and set -e would turn into an exit.
	execs=$({ grep -oE 'execs: [0-9]+' "$log" || true; } | tail -1 | cut -d' ' -f2)
	summary+=("$(printf '%-24s %-28s %12s %s' "$name" "./$dir" "${execs:-?}" "$note")")
done <<<"$targets"

printf '\n%-24s %-28s %12s\n' target package executions
printf '%s\n' "${summary[@]}"
