#!/usr/bin/env bash
# Install everything egress-run's build, tests, fuzzing and benchmarks need
# on Debian 12, as root. Idempotent: when every package is there it only
# asks dpkg and exits. Daemons that Debian starts on install (nginx, squid,
# tinyproxy, ssh, danted) are kept from starting and disabled: the tests run
# their own instances on loopback ports they choose.
#
#   scripts/deps.sh            install what is missing
#   scripts/deps.sh --check    list what is missing; exit 1 if anything is
set -euo pipefail

# One package per line: name, then why. The one list of what we need.
PACKAGES='
build-essential            # gcc, make, libc headers: the build
cmake                      # the build system (3.25 in bookworm)
pkg-config                 # finds the libraries below
clang                      # EGRESS_FUZZ=ON builds (libFuzzer) and ASan
libclang-rt-14-dev         # libFuzzer and sanitizer runtimes for clang 14
libssl-dev                 # OpenSSL 3: TLS interception, trust bundle
libevent-dev               # libevent 2.1 + libevent_openssl: the proxy loop
libcjson-dev               # cJSON: the --config file
libpcre2-dev               # PCRE2: request rules
zlib1g-dev                 # zlib: the git guard reads pushed packs
openssl                    # CLI: test CAs and certificates at run time
curl                       # the client in integration tests
wget                       # a GnuTLS client: WGETRC trust path
git                        # git over the proxy, git guard tests
python3                    # integration tests (/usr/bin/python3)
python3-requests           # python client trusting REQUESTS_CA_BUNDLE
python3-socks              # SOCKS5 client tests (requests[socks])
squid                      # a real external proxy / corporate upstream
mitmproxy                  # an intercepting external proxy (mitmdump)
nginx                      # origin server (HTTP, TLS, git http-backend)
fcgiwrap                   # CGI for nginx: git http-backend
tmux                       # a real terminal: Ctrl-C and TUI tests
procps                     # ps, pgrep, kill for tests and debugging
iproute2                   # ss: who listens where
openssh-server             # sshd for git-over-ssh via egress-run connect
openssh-client             # ssh with ProxyCommand
apache2-utils              # ab, htpasswd (proxy auth) for tests/benchmarks
microsocks                 # a small SOCKS5 upstream
dante-server               # danted: a SOCKS5 upstream with auth
gh                         # GitHub CLI: a real client behind the proxy
python3-prometheus-client  # parses the metrics endpoint in tests
valgrind                   # leak and memory checks of the proxy
wrk                        # HTTP load for benchmarks
hyperfine                  # start-up time benchmarks
time                       # /usr/bin/time: peak RSS in benchmarks
bubblewrap                 # sandbox-runtime (a benchmark peer) needs it
socat                      # sandbox-runtime (a benchmark peer) needs it
ripgrep                    # sandbox-runtime (a benchmark peer) needs it
tinyproxy                  # another upstream HTTP proxy
less                       # a full-screen program for terminal tests
ca-certificates            # system roots: the base of the trust bundle
nodejs                     # node clients (https, NODE_EXTRA_CA_CERTS) in tests
default-jdk-headless       # java: a client trusting the PKCS#12 trust store
man-db                     # man -l: the installed man page is read in a test
'

# Services the packages above start on install; they would hold ports.
SERVICES='nginx squid tinyproxy ssh danted fcgiwrap'

list_packages() {
	sed -e 's/#.*//' -e 's/[[:space:]]//g' -e '/^$/d' <<<"$PACKAGES"
}

missing_packages() {
	local p
	for p in $(list_packages); do
		if [ "$(dpkg-query -W -f='${db:Status-Abbrev}' "$p" \
		    2>/dev/null)" != "ii " ]; then
			echo "$p"
		fi
	done
}

stop_services() {
	local s
	for s in $SERVICES; do
		if [ -d /run/systemd/system ] && command -v systemctl \
		    >/dev/null; then
			systemctl disable --now "$s" >/dev/null 2>&1 || true
			systemctl disable --now "$s.socket" >/dev/null 2>&1 ||
			    true
		else
			if [ -x "/etc/init.d/$s" ]; then
				"/etc/init.d/$s" stop >/dev/null 2>&1 || true
			fi
			update-rc.d "$s" disable >/dev/null 2>&1 || true
		fi
	done
}

main() {
	local missing policy_made=0

	missing=$(missing_packages | tr "\n" " ")
	if [ "${1:-}" = "--check" ]; then
		[ -z "${missing// /}" ] && return 0
		echo "missing: $missing"
		return 1
	fi
	if [ -z "${missing// /}" ]; then
		echo "deps.sh: all $(list_packages | wc -l) packages present"
		return 0
	fi
	if [ "$(id -u)" != 0 ]; then
		if command -v sudo >/dev/null; then
			exec sudo bash "$0" "$@"
		fi
		echo "deps.sh: run as root to install: $missing" >&2
		return 1
	fi
	echo "deps.sh: installing: $missing"

	# Keep daemons from starting during the install (the usual Debian
	# policy-rc.d hook); remove the hook afterwards if it was ours.
	if [ ! -e /usr/sbin/policy-rc.d ]; then
		printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d
		chmod 755 /usr/sbin/policy-rc.d
		policy_made=1
		trap 'rm -f /usr/sbin/policy-rc.d' EXIT
	fi
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -q
	# shellcheck disable=SC2086
	apt-get install -y -q --no-install-recommends $missing
	if [ "$policy_made" = 1 ]; then
		rm -f /usr/sbin/policy-rc.d
		trap - EXIT
	fi
	stop_services
	missing=$(missing_packages | tr "\n" " ")
	if [ -n "${missing// /}" ]; then
		echo "deps.sh: still missing after install: $missing" >&2
		return 1
	fi
}

main "$@"
