#!/usr/bin/env bash
# Buildroot post-build: make the target tree look like scripts/build-image's
# initramfs (edgemx is /init; /dev/console exists via Buildroot's device table).
set -euo pipefail
TARGET=$1
mkdir -p "$TARGET"/{data,run,tmp,etc/edgemx}
# Buildroot's own /init wrapper (for BR2_INIT_NONE) would run a shell; edgemx
# is PID 1 instead.
[ -x "$TARGET/init" ] || { echo "post-build: $TARGET/init (edgemx) missing" >&2; exit 1; }
