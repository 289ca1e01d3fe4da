#!/usr/bin/env bash
# What the test suite needs from the system, beyond what pip installs: Debian's Chromium as
# its headless shell (the same build, without a browser's window, the renderer of its own
# interface and its compositor: a third of the CPU per page of the full browser run
# headless), which the admin pages' tests drive through Playwright (Playwright never
# downloads a browser here, and those tests fail, not skip, without it), and Debian's
# postgresql-client, whose psql the PostgreSQL front's tests use as agents do; Pango
# (with HarfBuzz's subsetter), which `tollgate audit report --format pdf` needs at run time
# through WeasyPrint, and poppler-utils, whose pdftoppm and pdftotext read the PDF back in
# tests/reporting; OpenSSH's server, the host behind the SSH front (tests/support/sshd.py),
# and its client (ssh, sftp), which the SSH tests use as agents do. sshd never runs as root
# there: when the tests do, it runs as the account tollgate-ssh, created here. MariaDB
# Connector/C: its library (libmariadb3, under the mariadb client), which the MySQL
# front's tests drive through ctypes for the commands no Python driver sends, and its
# headers (libmariadb-dev) and pkgconf, which the mysqlclient driver of the test extra
# builds from source with: the Makefile runs this before it installs that extra.
# `make test` runs this every time: with all there, it returns at once.
set -euo pipefail

say() { echo "make test: $*" >&2; }

# An unprivileged sshd logs in only the account it runs as. Sessions start in its home,
# which must exist (sshd complains on every session's stderr otherwise) and stays empty
# (/etc/skel's dotfiles would print or clear the screen in interactive sessions).
ACCOUNT=tollgate-ssh
if [ "$(id -u)" -eq 0 ] && ! getent passwd "$ACCOUNT" >/dev/null; then
    useradd --system --user-group --home-dir "/var/lib/$ACCOUNT" --shell /bin/bash "$ACCOUNT"
    install -d -o "$ACCOUNT" -g "$ACCOUNT" -m 700 "/var/lib/$ACCOUNT"
    say "created the account $ACCOUNT, which the SSH tests' sshd runs as"
fi

CHROMIUM=/usr/bin/chromium-headless-shell
missing=()
[ -x "$CHROMIUM" ] || missing+=(chromium-headless-shell)
command -v psql >/dev/null || missing+=(postgresql-client)
command -v pdftoppm >/dev/null || missing+=(poppler-utils)
[ -x /usr/sbin/sshd ] || missing+=(openssh-server)
command -v sftp >/dev/null || missing+=(openssh-client)
command -v pkg-config >/dev/null || missing+=(pkgconf)
[ -f /usr/include/mariadb/mysql.h ] || missing+=(libmariadb-dev)
/sbin/ldconfig -p | grep -q 'libmariadb.so.3 ' || missing+=(libmariadb3)
/sbin/ldconfig -p | grep -q 'libpangoft2-1.0.so.0 ' \
    || missing+=(libpango-1.0-0 libpangoft2-1.0-0 libharfbuzz-subset0)
[ ${#missing[@]} -eq 0 ] && exit 0

if ! command -v apt-get >/dev/null; then
    say "the tests need ${missing[*]}; install them with your distribution's package"
    say "manager (Debian and Ubuntu: apt-get install ${missing[*]})"
    exit 1
fi
if [ "$(id -u)" -eq 0 ]; then
    as_root=(env)
elif command -v sudo >/dev/null && sudo -n true 2>/dev/null; then
    as_root=(sudo env)
else
    say "the tests need Debian's ${missing[*]}, and installing them needs root."
    say "Run once, then make test again:"
    say "  sudo apt-get update && sudo apt-get install -y ${missing[*]}"
    exit 1
fi
# apt's hundreds of lines go to a log, shown only if the install fails.
log=$(mktemp)
trap 'rm -f "$log"' EXIT
apt_get() { "${as_root[@]}" DEBIAN_FRONTEND=noninteractive apt-get -q "$@" >>"$log" 2>&1; }
say "installing Debian's ${missing[*]} for the tests (about a minute)"
# The package lists may be stale or absent on a fresh machine: refresh them only if needed.
if ! apt_get install -y "${missing[@]}" \
        && ! { apt_get update && apt_get install -y "${missing[@]}"; }; then
    tail -n 30 "$log" >&2
    say "installing ${missing[*]} failed (apt-get's last lines above)"
    exit 1
fi
