#!/usr/bin/env bash
# Runs the Dockerfile's run stage without a container engine: a Debian 12 minbase root made by
# mmdebstrap stands in for debian:12-slim, and the stage's steps run in it with chroot. By hand,
# as root, where no container engine runs (docs/install.md says what it does and does not show):
#
#   make package && packaging/docker/check-runtime-stage.sh build/coalesce_0.1.0_amd64.deb
#
# Needs mmdebstrap (Debian package) and Debian's package mirror.
set -euo pipefail
deb=$(realpath "${1:?usage: check-runtime-stage.sh COALESCE.deb}")
here=$(cd "$(dirname "$0")" && pwd)
root=$(mktemp -d /tmp/coalesce-runtime-stage.XXXXXX)
cleanup() {
  for m in proc dev; do umount -l "$root/$m" 2>/dev/null || true; done
  rm -rf "$root"
}
trap cleanup EXIT

echo "== FROM debian:12-slim (mmdebstrap --variant=minbase bookworm)"
mmdebstrap --quiet --mode=root --variant=minbase bookworm "$root" http://deb.debian.org/debian
mount -t proc proc "$root/proc"
mount --bind /dev "$root/dev"
cp /etc/resolv.conf "$root/etc/resolv.conf"

echo "== RUN apt-get install ./coalesce.deb; useradd; COPY server.flags"
cp "$deb" "$root/tmp/"
chroot "$root" sh -c "apt-get update -qq && DEBIAN_FRONTEND=noninteractive \
  apt-get install -y -qq --no-install-recommends /tmp/$(basename "$deb") >/dev/null && \
  rm -rf /var/lib/apt/lists/* /tmp/*.deb && \
  useradd --system --uid 65532 --user-group --no-create-home --shell /usr/sbin/nologin coalesce && \
  mkdir -p /models"
cp "$here/server.flags" "$root/etc/coalesce/server.flags"
echo "image size without apt lists: $(du -sh --exclude=proc --exclude=dev "$root" | cut -f1)"

echo "== USER 65532: coalesce-server --flagfile=/etc/coalesce/server.flags (empty /models)"
chroot --userspec=65532:65532 "$root" coalesce-server --version
# An empty repository serves nothing; give it the demo model in place of a mounted one.
chroot --userspec=65532:65532 "$root" coalesce-server --flagfile=/etc/coalesce/server.flags \
  --model_repository= --device=cpu > "$root/tmp/server.log" 2>&1 &
server=$!
ok=0
for _ in $(seq 1 120); do
  if chroot --userspec=65532:65532 "$root" coalesce-client --health --timeout_ms=2000; then ok=1; break; fi
  sleep 1
done
echo "== HEALTHCHECK coalesce-client --health: $([ $ok = 1 ] && echo healthy || echo unhealthy)"
chroot --userspec=65532:65532 "$root" coalesce-client --model=demo | head -3
kill -TERM "$server"; wait "$server" && echo "== SIGTERM: exit 0"
tail -3 "$root/tmp/server.log"
[ $ok = 1 ]
