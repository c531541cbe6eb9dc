#!/bin/bash
# install-deps.sh: install the Debian packages avsr needs.
#
#   scripts/install-deps.sh [--dry-run] [LIST]
#
# LIST (default deps/debian-packages.txt) names one package per line; '#'
# starts a comment, blank lines are ignored. Only the packages that are not
# installed yet (dpkg-query) are installed, with `apt-get update` first and
# `apt-get install -y --no-install-recommends`, non-interactively, as root
# or through sudo. With everything present it only runs dpkg-query and
# returns at once. --dry-run prints the apt-get commands instead of running
# them.
set -euo pipefail

dry_run=0
if [ "${1:-}" = --dry-run ]; then
    dry_run=1
    shift
fi
root=$(cd "$(dirname "$0")/.." && pwd)
list=${1:-$root/deps/debian-packages.txt}
me=install-deps.sh

if [ ! -r "$list" ]; then
    echo "$me: cannot read the package list $list" >&2
    exit 1
fi
if ! command -v dpkg-query >/dev/null 2>&1; then
    echo "$me: dpkg-query not found: this script is for Debian and its derivatives;" \
        "install the packages of $list by other means" >&2
    exit 1
fi

# strip comments and blanks; a line may hold several names
mapfile -t wanted < <(sed -e 's/#.*//' "$list" | tr -s ' \t' '\n\n' | sed -e '/^$/d')
if [ ${#wanted[@]} -eq 0 ]; then
    echo "$me: $list lists no packages"
    exit 0
fi

missing=()
for p in "${wanted[@]}"; do
    status=$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null || true)
    case $status in
        *" installed") ;;
        *) missing+=("$p") ;;
    esac
done

if [ ${#missing[@]} -eq 0 ]; then
    echo "$me: all ${#wanted[@]} packages of $(basename "$list") are installed"
    exit 0
fi

echo "$me: installing ${#missing[@]} of ${#wanted[@]} packages: ${missing[*]}"

if [ "$(id -u)" -eq 0 ]; then
    as_root=(env DEBIAN_FRONTEND=noninteractive)
elif command -v sudo >/dev/null 2>&1; then
    as_root=(sudo env DEBIAN_FRONTEND=noninteractive)
else
    echo "$me: not root and no sudo: install as root: apt-get install ${missing[*]}" >&2
    exit 1
fi

run() {
    if [ $dry_run -eq 1 ]; then
        echo "+ $*"
    else
        "$@"
    fi
}
run "${as_root[@]}" apt-get update -q
run "${as_root[@]}" apt-get install -y -q --no-install-recommends "${missing[@]}"
