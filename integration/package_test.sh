#!/usr/bin/env bash
# The Debian packages on this machine, for real: scripts/package --no-build (from the ctest build
# dir), the three .debs and their Depends, lintian without errors, dpkg -i, systemd-analyze
# verify on every installed unit, the flotilla user and directories, an upgrade to a repack of
# the same binaries under a higher version keeping the data and the edited conffile, then purge
# deleting the data. Needs root (skips otherwise). Refuses to run when flotilla packages or
# directories it did not make are present; undoes everything it did on any exit.
#   FLOTILLA_BUILD_DIR  the configured and built build directory
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
BUILD_DIR="$(cd "${FLOTILLA_BUILD_DIR:?FLOTILLA_BUILD_DIR is not set}" && pwd)"
SKIP=77

if [ "$(id -u)" -ne 0 ]; then
  echo "package_test: SKIPPED: needs root (dpkg -i)"
  exit "$SKIP"
fi
for tool in lintian systemd-analyze dpkg-deb dpkg-shlibdeps cpack flock; do
  command -v "$tool" >/dev/null || { echo "package_test: $tool is missing (scripts/setup)" >&2; exit 1; }
done

fail() {
  echo "package_test: FAIL: $*" >&2
  exit 1
}
source "$ROOT/integration/lib/host_packages.sh"

take_install_lock
refuse_foreign_install /var/lib/flotilla /etc/flotilla
created_user=0
getent passwd flotilla >/dev/null || created_user=1

T="$(mktemp -d "${TMPDIR:-/tmp}/flotilla-package-test.XXXXXX")"
we_installed=0
cleanup() {
  local rc=$?
  if [ "$we_installed" = 1 ]; then
    dpkg_retry --purge "${FLOTILLA_PACKAGES[@]}" >"$T/cleanup-purge.log" 2>&1 || cat "$T/cleanup-purge.log" >&2
    rm -rf /var/lib/flotilla /etc/flotilla
  fi
  if [ "$created_user" = 1 ] && getent passwd flotilla >/dev/null; then
    userdel flotilla 2>/dev/null || true
    getent group flotilla >/dev/null && groupdel flotilla 2>/dev/null || true
  fi
  rm -rf "$T"
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

step() { echo "== $* ($(date +%T))"; }

VERSION="$(sed -n 's/^set(CPACK_PACKAGE_VERSION "\{0,1\}\([^")]*\).*/\1/p' "$BUILD_DIR/CPackConfig.cmake" | head -1)"
[ -n "$VERSION" ] || fail "no CPACK_PACKAGE_VERSION in $BUILD_DIR/CPackConfig.cmake"
NEXT="$VERSION+repack1"
ARCH="$(dpkg --print-architecture)"

step "scripts/package --no-build ($VERSION, and $NEXT for the upgrade)"
FLOTILLA_BUILD_DIR="$BUILD_DIR" "$ROOT/scripts/package" --no-build --out "$T/dist"
FLOTILLA_PACKAGE_VERSION="$NEXT" FLOTILLA_BUILD_DIR="$BUILD_DIR" "$ROOT/scripts/package" --no-build --out "$T/dist-next"

check_debs() { # DIR VERSION
  local dir="$1" version="$2" pkg deb depends
  [ "$(find "$dir" -maxdepth 1 -name '*.deb' | wc -l)" = 3 ] || fail "$dir does not hold exactly 3 .debs: $(ls "$dir")"
  for pkg in "${FLOTILLA_PACKAGES[@]}"; do
    deb="$dir/${pkg}_${version}_${ARCH}.deb"
    [ -f "$deb" ] || fail "missing $deb"
    [ "$(dpkg-deb -f "$deb" Package)" = "$pkg" ] || fail "$deb: wrong Package"
    [ "$(dpkg-deb -f "$deb" Version)" = "$version" ] || fail "$deb: Version $(dpkg-deb -f "$deb" Version), want $version"
    depends="$(dpkg-deb -f "$deb" Depends)"
    # shlibdeps found the shared libraries each binary links.
    case "$pkg" in
      flotilla-coordinator) libs="libc6 libstdc++6 libzmq5 librocksdb7.8 libcapnp-0.9.2" ;;
      flotilla-agent) libs="libc6 libstdc++6 libzmq5 libcapnp-0.9.2" ;;
      flotilla) libs="libc6 libstdc++6 libcurl4" ;;
    esac
    for lib in $libs; do
      [[ ", $depends" == *", $lib "* ]] || [[ "$depends, " == *" $lib,"* ]] || fail "$deb: Depends lacks $lib: $depends"
    done
    if [ "$pkg" = flotilla ]; then
      [[ "$depends" != *adduser* ]] || fail "$deb: the CLI does not need adduser: $depends"
    else
      [[ "$depends" == *adduser* ]] || fail "$deb: Depends lacks adduser: $depends"
    fi
    echo "$pkg $version: Depends: $depends"
  done
}
check_debs "$T/dist" "$VERSION"
check_debs "$T/dist-next" "$NEXT"

step "lintian --fail-on error"
lintian --fail-on error --tag-display-limit 0 "$T"/dist/*.deb || fail "lintian reported errors"

step "dpkg -i"
we_installed=1
dpkg_retry -i "$T/dist/flotilla-coordinator_${VERSION}_${ARCH}.deb" \
  "$T/dist/flotilla-agent_${VERSION}_${ARCH}.deb" "$T/dist/flotilla_${VERSION}_${ARCH}.deb"
for pkg in "${FLOTILLA_PACKAGES[@]}"; do
  [ "$(dpkg-query -W -f='${Status} ${Version}' "$pkg")" = "install ok installed $VERSION" ] || fail "$pkg is not installed"
done
"/usr/bin/flotilla-coordinator" --version >/dev/null || fail "the installed coordinator does not run"
"/usr/bin/flotilla-agent" --version >/dev/null || fail "the installed agent does not run"
"/usr/bin/flotilla" --version >/dev/null || fail "the installed CLI does not run"

step "systemd-analyze verify"
UNITS=(/lib/systemd/system/flotilla-coordinator.service /lib/systemd/system/flotilla-agent.service
  /lib/systemd/system/flotilla-agent@.service flotilla-agent@x.service)
for unit in "${UNITS[@]}"; do
  if ! systemd-analyze verify --man=no "$unit" >"$T/verify.out" 2>"$T/verify.err" || [ -s "$T/verify.err" ]; then
    cat "$T/verify.out" "$T/verify.err" >&2
    fail "systemd-analyze verify $unit"
  fi
done
systemd-analyze security --offline=yes --threshold=20 /lib/systemd/system/flotilla-coordinator.service \
  >"$T/security.out" 2>&1 || { cat "$T/security.out" >&2; fail "the coordinator unit's exposure grew"; }
grep "Overall exposure" "$T/security.out"

step "user, directories, modes"
check_stat() { # PATH MODE OWNER:GROUP
  local got
  got="$(stat -c '%a %U:%G' "$1")" || fail "$1 is missing"
  [ "$got" = "$2 $3" ] || fail "$1: $got, want $2 $3"
}
entry="$(getent passwd flotilla)" || fail "no flotilla user"
uid="$(echo "$entry" | cut -d: -f3)"
((uid < 1000)) || fail "flotilla is not a system user: $entry"
[ "$(echo "$entry" | cut -d: -f6)" = /var/lib/flotilla ] || fail "flotilla's home: $entry"
check_stat /var/lib/flotilla 750 flotilla:flotilla
check_stat /var/lib/flotilla/coordinator 700 flotilla:flotilla
check_stat /var/lib/flotilla/agent 700 flotilla:flotilla
check_stat /etc/flotilla 755 root:root
check_stat /etc/flotilla/coordinator.env 644 root:root
check_stat /etc/flotilla/agent.env 644 root:root
check_stat /usr/bin/flotilla-coordinator 755 root:root
dpkg-query -W -f='${Conffiles}\n' flotilla-coordinator | grep -q ' /etc/flotilla/coordinator.env ' ||
  fail "coordinator.env is not a conffile"
dpkg-query -W -f='${Conffiles}\n' flotilla-agent | grep -q ' /etc/flotilla/agent.env ' || fail "agent.env is not a conffile"
# A fresh install is not enabled (the coordinator must be bootstrapped first, the agent configured).
[ ! -e /etc/systemd/system/multi-user.target.wants/flotilla-coordinator.service ] || fail "coordinator enabled on install"
[ ! -e /etc/systemd/system/multi-user.target.wants/flotilla-agent.service ] || fail "agent enabled on install"
grep -v '^#' /etc/flotilla/coordinator.env | grep -q . && fail "coordinator.env sets something by default"
grep -v '^#' /etc/flotilla/agent.env | grep -q . && fail "agent.env sets something by default"

step "upgrade to $NEXT keeps data and the edited conffile"
install -o flotilla -g flotilla -m 0600 /dev/null /var/lib/flotilla/coordinator/keep-me
echo data >/var/lib/flotilla/coordinator/keep-me
echo 'FLOTILLA_LISTEN_HTTP=127.0.0.1:7781' >>/etc/flotilla/coordinator.env
# An operator's own mode on a data dir survives (postinst makes them only when missing).
chmod 0750 /var/lib/flotilla/agent
dpkg_retry -i "$T/dist-next/flotilla-coordinator_${NEXT}_${ARCH}.deb" \
  "$T/dist-next/flotilla-agent_${NEXT}_${ARCH}.deb" "$T/dist-next/flotilla_${NEXT}_${ARCH}.deb"
for pkg in "${FLOTILLA_PACKAGES[@]}"; do
  [ "$(dpkg-query -W -f='${Status} ${Version}' "$pkg")" = "install ok installed $NEXT" ] || fail "$pkg was not upgraded"
done
[ "$(cat /var/lib/flotilla/coordinator/keep-me 2>/dev/null)" = data ] || fail "the upgrade lost /var/lib/flotilla/coordinator/keep-me"
check_stat /var/lib/flotilla/coordinator/keep-me 600 flotilla:flotilla
grep -qx 'FLOTILLA_LISTEN_HTTP=127.0.0.1:7781' /etc/flotilla/coordinator.env || fail "the upgrade replaced the edited coordinator.env"
check_stat /var/lib/flotilla/agent 750 flotilla:flotilla

step "dpkg --purge deletes the data"
mkdir -p /var/lib/flotilla/agent-x
touch /etc/flotilla/agent-x.env /etc/flotilla/coordinator.pub /etc/flotilla/admin.token
dpkg_retry --purge "${FLOTILLA_PACKAGES[@]}"
for pkg in "${FLOTILLA_PACKAGES[@]}"; do
  status="$(installed_status "$pkg")"
  [ -z "$status" ] || [ "$status" = not-installed ] || fail "$pkg is still present after purge ($status)"
done
we_installed=0
[ ! -e /var/lib/flotilla ] || fail "purge left /var/lib/flotilla: $(find /var/lib/flotilla)"
[ ! -e /etc/flotilla ] || fail "purge left /etc/flotilla: $(find /etc/flotilla)"
[ ! -e /lib/systemd/system/flotilla-coordinator.service ] || fail "purge left the coordinator unit"
echo "package_test: OK"
