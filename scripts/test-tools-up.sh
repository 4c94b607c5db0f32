#!/usr/bin/env bash
# Installs, from Debian packages and only when missing, the tools the browser and deployment tests drive:
# chromium (web-js/test/browser.test.mjs), docker-compose (the compose file check) and haproxy (the cluster test runs
# the shipped deploy/haproxy.cfg in front of two nodes). Run before the suites so
# that a package download on a fresh machine is not counted against any test's own time limit.
# Usage: scripts/test-tools-up.sh   (needs root to install; without root it only reports what is missing)
missing=()
command -v chromium >/dev/null 2>&1 || missing+=(chromium)
command -v docker-compose >/dev/null 2>&1 || missing+=(docker-compose)
command -v haproxy >/dev/null 2>&1 || missing+=(haproxy)
[ ${#missing[@]} -eq 0 ] && exit 0
if [ "$(id -u)" != 0 ]; then
  echo "test-tools-up: missing ${missing[*]} (install them as root: apt-get install ${missing[*]})" >&2
  exit 0
fi
echo "test-tools-up: installing ${missing[*]} from Debian packages"
export DEBIAN_FRONTEND=noninteractive
apt-get -o DPkg::Lock::Timeout=600 install -y -qq "${missing[@]}" >/dev/null 2>&1 \
  || { apt-get -o DPkg::Lock::Timeout=600 update -qq >/dev/null 2>&1 && apt-get -o DPkg::Lock::Timeout=600 install -y -qq "${missing[@]}" >/dev/null 2>&1; } \
  || echo "test-tools-up: could not install ${missing[*]}; the tests that need them will fail" >&2
exit 0
