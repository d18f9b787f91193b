#!/bin/sh
# Installs coalesce-server as a launchd LaunchAgent of the logged-in macOS user and starts it.
# `make install-launchd` runs this from the repository root after building.
#
#   deploy/launchd/install.sh               install (or reinstall) and start
#   deploy/launchd/install.sh --uninstall   stop and remove the job (binary and flags stay)
#   PREFIX=/opt/coalesce BUILD=build-release deploy/launchd/install.sh
#
# Files: what `cmake --install` puts under $PREFIX (bin/coalesce-server,
# etc/coalesce/server.flags, an existing one kept; share/coalesce, share/doc/coalesce),
# logs in $PREFIX/var/log/coalesce/, the job in ~/Library/LaunchAgents/com.coalesce.server.plist.
set -eu

PREFIX=${PREFIX:-/usr/local}
BUILD=${BUILD:-build}
LABEL=com.coalesce.server
REPO=$(cd "$(dirname "$0")/../.." && pwd)
AGENT_DIR="$HOME/Library/LaunchAgents"
AGENT="$AGENT_DIR/$LABEL.plist"
DOMAIN="gui/$(id -u)"

if [ "$(uname -s)" != Darwin ]; then
  echo "install.sh: launchd is macOS only; on Linux use deploy/systemd/coalesce.service" >&2
  exit 1
fi

# Writes under $PREFIX through sudo only where the user cannot write ($PREFIX may be root's).
as_owner() {
  if [ -w "$PREFIX" ] || { [ ! -e "$PREFIX" ] && [ -w "$(dirname "$PREFIX")" ]; }; then
    "$@"
  else
    sudo "$@"
  fi
}

if [ "${1:-}" = "--uninstall" ]; then
  launchctl bootout "$DOMAIN/$LABEL" 2>/dev/null || true
  rm -f "$AGENT"
  echo "removed $LABEL (left $PREFIX/bin/coalesce-server and $PREFIX/etc/coalesce/ in place)"
  exit 0
fi

BINARY="$REPO/$BUILD/server/coalesce-server"
[ -x "$BINARY" ] || { echo "install.sh: $BINARY not found; run 'make build' first" >&2; exit 1; }

# Check the plist before touching anything.
plutil -lint "$REPO/deploy/launchd/$LABEL.plist"

as_owner mkdir -p "$PREFIX/var/log/coalesce" "$PREFIX/var/coalesce"
# The project's install rules (cmake/install.cmake): binaries, the flag file in
# $PREFIX/etc/coalesce (an existing one is kept), the example repository and docs in share/.
[ -e "$PREFIX/etc/coalesce/server.flags" ] && echo "keeping existing $PREFIX/etc/coalesce/server.flags"
as_owner cmake --install "$REPO/$BUILD" --prefix "$PREFIX"
# The agent runs as this user: it writes its logs and works in these two folders.
as_owner chown "$(id -un)" "$PREFIX/var/log/coalesce" "$PREFIX/var/coalesce"

mkdir -p "$AGENT_DIR"
sed "s#/usr/local/#$PREFIX/#g" "$REPO/deploy/launchd/$LABEL.plist" > "$AGENT"
plutil -lint "$AGENT"

# bootout drains a running server (SIGTERM, up to ExitTimeOut) before the new one starts.
launchctl bootout "$DOMAIN/$LABEL" 2>/dev/null || true
launchctl bootstrap "$DOMAIN" "$AGENT"
launchctl enable "$DOMAIN/$LABEL"
echo "started $LABEL: launchctl print $DOMAIN/$LABEL; logs in $PREFIX/var/log/coalesce/"
