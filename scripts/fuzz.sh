#!/usr/bin/env bash
# scripts/fuzz.sh: run every fuzz target of the repository for a bounded
# time each and fail if any of them finds a crash.
#
#   ./scripts/fuzz.sh                  all packages (./...)
#   ./scripts/fuzz.sh ./proxy/...      only these packages
#   FUZZTIME=1m ./scripts/fuzz.sh      longer runs (default 20s per target;
#                                      any go test -fuzztime value, e.g. 10000x)
#   FUZZ_BUDGET=300 ./scripts/fuzz.sh  cap the total to about 300 s: each
#                                      target gets min(FUZZTIME, 300/N s), at
#                                      least 5 s (FUZZTIME in s or m only)
#
# Targets are found with `go test -list '^Fuzz'` (one go test -fuzz run per
# target: go test fuzzes one target of one package at a time). A crash
# makes go test write the input under the package's testdata/fuzz/<Target>/;
# its path is printed so it can be committed as a regression seed or
# replayed with go test -run '<Target>/<file>'.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

if ! command -v go >/dev/null 2>&1 && [ -x /usr/local/go/bin/go ]; then
	export PATH="$PATH:/usr/local/go/bin"
fi

FUZZTIME="${FUZZTIME:-20s}"
pkgs=("$@")
if [ "${#pkgs[@]}" -eq 0 ]; then
	pkgs=(./...)
fi

echo "fuzz.sh: listing fuzz targets in ${pkgs[*]}"
if ! listing=$(go test -run '^$' -list '^Fuzz' "${pkgs[@]}" 2>&1); then
	echo "$listing" >&2
	echo "fuzz.sh: could not list fuzz targets (build failure?)" >&2
	exit 1
fi

# go test prints each package's names, then its "ok <pkg> <time>" line.
targets=() # "<import path> <FuzzName>"
pending=()
while IFS= read -r line; do
	case "$line" in
	Fuzz*)
		pending+=("$line")
		;;
	ok*)
		read -r _ pkg _ <<<"$line"
		for name in "${pending[@]}"; do
			targets+=("$pkg $name")
		done
		pending=()
		;;
	esac
done <<<"$listing"

if [ "${#targets[@]}" -eq 0 ]; then
	echo "fuzz.sh: no fuzz targets found"
	exit 0
fi

fuzztime="$FUZZTIME"
if [ -n "${FUZZ_BUDGET:-}" ]; then
	want=""
	case "$FUZZTIME" in
	*[0-9]s) want=${FUZZTIME%s} ;;
	*[0-9]m) want=$((${FUZZTIME%m} * 60)) ;;
	esac
	if [[ "$want" =~ ^[0-9]+$ ]]; then
		share=$((FUZZ_BUDGET / ${#targets[@]}))
		if [ "$share" -lt 5 ]; then
			share=5
		fi
		if [ "$share" -lt "$want" ]; then
			fuzztime="${share}s"
		fi
	fi
fi
echo "fuzz.sh: ${#targets[@]} targets, ${fuzztime} each"

failed=()
for target in "${targets[@]}"; do
	read -r pkg name <<<"$target"
	echo "fuzz.sh: === $name ($pkg)"
	log=$(mktemp)
	if go test -run '^$' -fuzz "^${name}\$" -fuzztime "$fuzztime" "$pkg" 2>&1 | tee "$log"; then
		rm -f "$log"
		continue
	fi
	dir=$(go list -f '{{.Dir}}' "$pkg")
	inputs=$(sed -n 's/.*Failing input written to \([^ ]*\).*/\1/p' "$log")
	if [ -z "$inputs" ] && grep -qx '    context deadline exceeded' "$log"; then
		# Go's fuzz coordinator can report its own -fuzztime deadline as
		# a failure (golang/go#75804, fixed in Go 1.27): no input failed,
		# nothing was written. A real crash or hang always writes one.
		echo "fuzz.sh: $name: ignoring Go's fuzztime deadline race (golang/go#75804); no failing input"
		rm -f "$log"
		continue
	fi
	failed+=("$name ($pkg)")
	if [ -n "$inputs" ]; then
		while IFS= read -r input; do
			echo "fuzz.sh: FAILING INPUT: $dir/$input" >&2
			echo "fuzz.sh: replay with: go test -run '^${name}\$/$(basename "$input")' $pkg" >&2
		done <<<"$inputs"
	else
		echo "fuzz.sh: $name failed without a crash input (see the output above)" >&2
	fi
	rm -f "$log"
done

if [ "${#failed[@]}" -gt 0 ]; then
	echo "fuzz.sh: FAILED: ${failed[*]}" >&2
	exit 1
fi
echo "fuzz.sh: all ${#targets[@]} targets passed"
