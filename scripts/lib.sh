# Shared helpers for the image scripts (sourced, not executed).
# Every helper prints what it does on stderr and fails with a message naming
# the missing tool or package.

log() { printf '%s: %s\n' "${0##*/}" "$*" >&2; }
die() { printf '%s: error: %s\n' "${0##*/}" "$*" >&2; exit 1; }

# need_pkg PACKAGE [COMMAND...]: install PACKAGE with apt-get when one of the
# commands (or the package itself, when no command is named) is missing.
need_pkg() {
    local pkg=$1 missing=0 c
    shift
    if [ $# -eq 0 ]; then
        dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'ok installed' || missing=1
    else
        for c in "$@"; do command -v "$c" >/dev/null 2>&1 || missing=1; done
    fi
    [ "$missing" -eq 0 ] && return 0
    log "installing $pkg (needed for: ${*:-$pkg})"
    command -v apt-get >/dev/null || die "package $pkg is missing and apt-get is unavailable"
    if [ "$(id -u)" -ne 0 ]; then die "package $pkg is missing; install it (apt-get install $pkg)"; fi
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q "$pkg" >/dev/null 2>&1 ||
        { apt-get update -q >/dev/null 2>&1 &&
          DEBIAN_FRONTEND=noninteractive apt-get install -y -q "$pkg" >/dev/null; } ||
        die "could not install package $pkg"
}

# pkg_version PACKAGE: the installed version, or "unknown".
pkg_version() { dpkg-query -W -f='${Version}' "$1" 2>/dev/null || echo unknown; }

# Repository root, whatever the caller's working directory.
repo_root() { cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd; }
