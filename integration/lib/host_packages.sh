# Shared by the tests that install Flotilla's packages on this machine (package_test.sh,
# install_test.sh); sourced, not run. The caller defines fail() and sets T (its temp dir) before
# calling dpkg_retry.

FLOTILLA_PACKAGES=(flotilla-coordinator flotilla-agent flotilla)

# One test at a time changes this machine's flotilla packages: fd 9 holds the lock until exit.
take_install_lock() {
  exec 9>/run/lock/flotilla-install-test.lock
  flock -w 600 9 || fail "another install test holds /run/lock/flotilla-install-test.lock"
}

installed_status() { dpkg-query -W -f='${db:Status-Status}' "$1" 2>/dev/null || true; }

# Refuses to run when a flotilla package, or one of the given paths, is already on this machine:
# the test would take over (and finally purge) what someone else installed.
refuse_foreign_install() {
  local pkg status path
  for pkg in "${FLOTILLA_PACKAGES[@]}"; do
    status="$(installed_status "$pkg")"
    if [ -n "$status" ] && [ "$status" != "not-installed" ]; then
      fail "refusing to run: package $pkg is present ($status) and was not installed by this test"
    fi
  done
  for path in "$@"; do
    [ ! -e "$path" ] || fail "refusing to run: $path exists and was not made by this test"
  done
}

# dpkg refuses at once when another dpkg/apt holds its lock: wait for it a while.
dpkg_retry() {
  local i
  for i in $(seq 1 60); do
    if dpkg "$@" >"$T/dpkg.out" 2>&1; then cat "$T/dpkg.out"; return 0; fi
    grep -q 'lock' "$T/dpkg.out" || { cat "$T/dpkg.out" >&2; return 1; }
    sleep 2
  done
  cat "$T/dpkg.out" >&2
  return 1
}
