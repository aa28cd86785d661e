#!/bin/sh
# Install the Debian packages the test suite needs and pip cannot provide:
# PostGIS (the geofence geometry is cross-checked against it), Chromium
# with its driver (the dashboard test drives a real browser) and a Chinese
# font (the console is in Chinese; without one its screenshots show boxes).
#
#   scripts/install-system-deps.sh            install what is missing (as root)
#   scripts/install-system-deps.sh --check    only say what is missing; exit 1 if anything is
#   scripts/install-system-deps.sh --dry-run  print the install commands instead of running them
#   scripts/install-system-deps.sh --demo     only what `make demo` needs (a PostgreSQL server)
#
# Without root it installs nothing: it prints the one command to run and
# exits 1, so `make test` stops before a test fails for a missing package.
# WARDSTREAM_PG_ROOT, WARDSTREAM_PG_SHARE, WARDSTREAM_FONT_DIR and PATH decide
# where it looks (defaults: /usr/lib/postgresql, /usr/share/postgresql and
# /usr/share/fonts).
set -eu

mode=install
only_demo=no
for arg in "$@"; do
  case "$arg" in
    --check) mode=check ;;
    --dry-run) mode=dry-run ;;
    --demo) only_demo=yes ;;
    -h|--help) sed -n '2,16p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "install-system-deps: unknown option $arg (--check, --dry-run, --demo)" >&2; exit 2 ;;
  esac
done

pg_root=${WARDSTREAM_PG_ROOT:-/usr/lib/postgresql}
pg_share=${WARDSTREAM_PG_SHARE:-/usr/share/postgresql}
need=""
pg_major=$(ls "$pg_root" 2>/dev/null | sort -n | tail -1 || true)
if [ -z "$pg_major" ]; then
  # no server at all: Debian's default PostgreSQL, and PostGIS built for it
  need="postgresql"
  [ "$only_demo" = yes ] || need="$need postgresql-postgis"
elif [ "$only_demo" = no ] && [ ! -e "$pg_share/$pg_major/extension/postgis.control" ]; then
  need="$need postgresql-$pg_major-postgis-3"
fi
if [ "$only_demo" = no ]; then
  command -v chromium >/dev/null 2>&1 || need="$need chromium"
  command -v chromedriver >/dev/null 2>&1 || need="$need chromium-driver"
  font_dir=${WARDSTREAM_FONT_DIR:-/usr/share/fonts}
  cjk=no
  for f in "$font_dir"/truetype/wqy/* "$font_dir"/opentype/noto/*CJK* "$font_dir"/truetype/arphic/*; do
    [ -e "$f" ] && cjk=yes
  done
  [ "$cjk" = yes ] || need="$need fonts-wqy-microhei"
fi
need=${need# }

if [ -z "$need" ]; then
  [ "$mode" = install ] || echo "install-system-deps: nothing missing"
  exit 0
fi
install_cmd="apt-get install -y --no-install-recommends $need"
case "$mode" in
  check)
    echo "install-system-deps: missing Debian packages: $need" >&2
    exit 1 ;;
  dry-run)
    echo "apt-get update"
    echo "$install_cmd"
    exit 0 ;;
esac
if [ "$(id -u)" != 0 ]; then
  echo "install-system-deps: Debian packages are missing: $need" >&2
  echo "install-system-deps: run as root: apt-get update && $install_cmd" >&2
  exit 1
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
# shellcheck disable=SC2086 # $need is a list of package names
apt-get install -y -qq --no-install-recommends $need
