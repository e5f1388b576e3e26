#!/usr/bin/env bash
# Runs the whole test suite on a fresh machine: installs what the tests need
# from Debian's packages if it is missing (redis-server; redis-sentinel for
# the Sentinel topology: a primary, a replica and three sentinels that the
# store, conformance, black-box and failover tests start; chromium for the
# browser tests, and fonts-dejavu-core so their screenshots show Cyrillic;
# python3-jwt and python3-cryptography for the README's Python example),
# then runs vet and every test with the race detector. Tests start and stop
# their own redis-server on a free loopback port and their own headless
# chromium; nothing else needs to be running. Screenshots of the pages land
# in tests/screenshots/.
set -euo pipefail
cd "$(dirname "$0")/.."

apt_install() { # apt_install <debian package>
	local sudo=""
	[ "$(id -u)" -eq 0 ] || sudo="sudo"
	$sudo apt-get update -qq
	DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "$1" >/dev/null
}

need_pkg() { # need_pkg <command> <debian package>
	command -v "$1" >/dev/null 2>&1 && return 0
	echo "installing $2 (needed for $1)..." >&2
	apt_install "$2"
}

need_file() { # need_file <path> <debian package>
	[ -e "$1" ] && return 0
	echo "installing $2 (needed for $1)..." >&2
	apt_install "$2"
}

need_pkg redis-server redis-server
need_pkg redis-sentinel redis-sentinel
need_pkg chromium chromium
need_file /usr/share/fonts/truetype/dejavu fonts-dejavu-core
# The README's Python example of verifying an identity assertion (PyJWT),
# run by tests/assertion_test.go with Debian's python3.
if ! /usr/bin/python3 -c 'import jwt, cryptography' >/dev/null 2>&1; then
	echo "installing python3-jwt and python3-cryptography (needed for the README's Python example)..." >&2
	apt_install python3-jwt
	apt_install python3-cryptography
fi

unformatted=$(gofmt -l $(git ls-files '*.go' 2>/dev/null || find . -name '*.go'))
if [ -n "$unformatted" ]; then
	echo "gofmt needed on:" >&2
	echo "$unformatted" >&2
	exit 1
fi
go vet ./...
# Generous: the browser and black-box tests start real processes, and a
# busy machine slows them down.
go test -race -count=1 -timeout 60m "$@" ./...
