#!/usr/bin/env bash
# scripts/test.sh: the project's test command.
#
#   ./scripts/test.sh                          everything: gofmt, vet, go test -race ./...
#   ./scripts/test.sh -run TestX ./proxy/...   go test flags and/or packages
#   ./scripts/test.sh -v -run TestDovecot      flags only: packages default to ./...
#
# Steps, in order, stopping at the first failure:
#   1. Real-peer programs (Dovecot, curl, fetchmail, ...): when root, install
#      the Debian packages that are missing (apt-get); when not root, list
#      them and go on. Their tests then skip, or fail when
#      OAUTHBRIDGE_REQUIRE_PEERS=1 (as .ci/run sets it).
#   2. gofmt -l over the whole tree (with packages given: over their
#      directories): fails listing unformatted files.
#   3. go vet on the packages.
#   4. go test -race -count=1 -timeout=6m <your flags> <packages>
#      (pass -timeout yourself for long benchmarks).
#
# Arguments: anything that looks like a package pattern (".", "./...",
# "./x", "../x", "/abs", "github.com/oauthbridge/...") is a package; the
# rest are go test flags, passed through in order. A flag's separate value
# is never taken for a package (-run ./x is a flag and its value), but
# prefer -flag=value. Arguments for the test binary go after -args, as with
# go test itself.
#
# -race needs cgo and so a C compiler (gcc); without one and not root the
# tests run without -race and say so, except under
# OAUTHBRIDGE_REQUIRE_PEERS=1, where that is an error.
#
# Works on a fresh Debian 12 with Go in /usr/local/go (added to PATH when
# go is not found).
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

if ! command -v go >/dev/null 2>&1 && [ -x /usr/local/go/bin/go ]; then
	export PATH="$PATH:/usr/local/go/bin"
fi
if ! command -v go >/dev/null 2>&1; then
	echo "test.sh: go not found (install Go into /usr/local/go or put it in PATH)" >&2
	exit 1
fi

# The Debian packages the real-peer tests use (internal/testpeers.Packages
# maps programs to these), plus gcc and libc6-dev for -race. The one place
# this list is kept.
PEER_PACKAGES=(
	dovecot-core dovecot-imapd dovecot-pop3d dovecot-submissiond
	curl python3 fetchmail swaks msmtp openssl isync offlineimap getmail6
	neomutt chromium systemd bsdutils
	gcc libc6-dev
)

# missing_packages prints the packages of PEER_PACKAGES not installed.
missing_packages() {
	local pkg status
	for pkg in "${PEER_PACKAGES[@]}"; do
		status=$(dpkg-query -W -f='${db:Status-Abbrev}' "$pkg" 2>/dev/null || true)
		# Status-Abbrev: desired action, then state ("i" = installed; a
		# held package is "hi"), then error flag.
		if [ "${status:1:1}" != "i" ]; then
			echo "$pkg"
		fi
	done
}

if command -v dpkg-query >/dev/null 2>&1; then
	mapfile -t missing < <(missing_packages)
	if [ "${#missing[@]}" -gt 0 ]; then
		if [ "$(id -u)" -eq 0 ]; then
			echo "test.sh: installing ${missing[*]}"
			export DEBIAN_FRONTEND=noninteractive
			apt-get update
			apt-get install -y --no-install-recommends "${missing[@]}"
			mapfile -t missing < <(missing_packages)
			if [ "${#missing[@]}" -gt 0 ]; then
				echo "test.sh: still missing after install: ${missing[*]}" >&2
				exit 1
			fi
		else
			echo "test.sh: not root, not installing: ${missing[*]}"
			echo "test.sh: tests needing them will skip (or fail with OAUTHBRIDGE_REQUIRE_PEERS=1)"
		fi
	else
		echo "test.sh: all real-peer packages installed"
	fi
else
	echo "test.sh: no dpkg-query (not Debian): not checking real-peer packages"
fi

# Split the arguments into go test flags and packages.
VALUE_FLAGS=" -bench -benchtime -blockprofile -blockprofilerate -count -coverpkg -covermode
	-coverprofile -cpu -cpuprofile -exec -fuzz -fuzzminimizetime -fuzztime -list -memprofile
	-memprofilerate -mutexprofile -mutexprofilefraction -o -outputdir -p -parallel -run -shuffle
	-skip -tags -timeout -trace -vet -ldflags -gcflags -asmflags -modfile -pkgdir -toolexec "
flags=()
pkgs=()
binargs=() # -args and what follows: must come after the packages
expect_value=false
for arg in "$@"; do
	if [ "${#binargs[@]}" -gt 0 ]; then
		binargs+=("$arg")
		continue
	fi
	if $expect_value; then
		flags+=("$arg")
		expect_value=false
		continue
	fi
	case "$arg" in
	-args | --args)
		binargs+=(-args)
		;;
	-*=*)
		flags+=("$arg")
		;;
	-*)
		flags+=("$arg")
		# -flag and --flag both take their value from the next argument.
		if [[ "$VALUE_FLAGS" == *" -${arg#"${arg%%[!-]*}"} "* ]]; then
			expect_value=true
		fi
		;;
	. | ./* | .. | ../* | /* | github.com/oauthbridge/*)
		pkgs+=("$arg")
		;;
	*)
		flags+=("$arg")
		;;
	esac
done
if [ "${#pkgs[@]}" -eq 0 ]; then
	pkgs=(./...)
fi

# gofmt covers the whole tree, or with packages given, their directories
# (and what is below them).
if [ "${pkgs[*]}" = "./..." ]; then
	fmt_dirs=(.)
else
	mapfile -t fmt_dirs < <(go list -e -f '{{.Dir}}' "${pkgs[@]}")
fi
echo "test.sh: gofmt -l"
unformatted=$(gofmt -l "${fmt_dirs[@]}")
if [ -n "$unformatted" ]; then
	echo "test.sh: not gofmt-ed (run gofmt -w on them):" >&2
	echo "$unformatted" >&2
	exit 1
fi

echo "test.sh: go vet ${pkgs[*]}"
go vet "${pkgs[@]}"

race=(-race)
if [ "$(go env CGO_ENABLED)" != "1" ]; then
	if [ "${OAUTHBRIDGE_REQUIRE_PEERS:-}" = "1" ]; then
		echo "test.sh: -race needs cgo and a C compiler (Debian package gcc)" >&2
		exit 1
	fi
	echo "test.sh: WARNING: no C compiler, so no -race (install gcc, or run as root to have it installed)" >&2
	race=()
fi

# -timeout: a hung package fails after 6 minutes instead of go test's 10,
# which alone would blow CI's 15-minute budget. A -timeout of yours wins
# (later flags override earlier ones).
echo "test.sh: go test ${race[*]} -count=1 -timeout=6m ${flags[*]} ${pkgs[*]} ${binargs[*]}"
exec go test "${race[@]}" -count=1 -timeout=6m "${flags[@]}" "${pkgs[@]}" "${binargs[@]}"
