# Sourced by the scripts: `install_packages PKG...` runs `apt-get update` and `apt-get install` for the
# Debian packages (always: a fresh machine has none of them, and an installed one is a no-op), then
# `require_programs PROG...` fails clearly if a program the caller runs is still missing.
install_packages() {
  local sudo=""
  [ "$(id -u)" -eq 0 ] || sudo=sudo
  echo "==> apt-get install $*"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "$@"
}

require_programs() {
  local p
  for p in "$@"; do
    command -v "$p" >/dev/null || { echo "error: $p is still missing after apt-get install" >&2; exit 1; }
  done
}
