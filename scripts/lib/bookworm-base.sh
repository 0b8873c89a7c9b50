# Sourced by scripts/container-test and scripts/package-test: a Debian bookworm minbase root
# filesystem made with debootstrap from the Debian mirror, cached as a tarball between runs.
#
#   RD_CACHE_DIR      where the tarball lives (default /var/cache/route-delivery-test)
#   DEBIAN_MIRROR     the mirror debootstrap uses (default: the first deb.debian.org-style URI
#                     apt is configured with, else http://deb.debian.org/debian)
#
# Delete "$RD_CACHE_DIR/bookworm-minbase.tar" to make a new one (e.g. after a Debian point release).

RD_CACHE_DIR=${RD_CACHE_DIR:-/var/cache/route-delivery-test}
RD_BASE_TAR="$RD_CACHE_DIR/bookworm-minbase.tar"

rd_debian_mirror() {
  if [[ -n "${DEBIAN_MIRROR:-}" ]]; then echo "$DEBIAN_MIRROR"; return; fi
  local uri
  uri=$(grep -hsE '^(URIs:|deb )' /etc/apt/sources.list /etc/apt/sources.list.d/*.sources \
          /etc/apt/sources.list.d/*.list 2>/dev/null |
        grep -oE 'https?://[^ ]+/debian/?' | grep -v security | head -1 || true)
  echo "${uri:-http://deb.debian.org/debian}"
}

# Installs the Debian packages named as arguments when missing (apt-get update at most once).
rd_need_packages() {
  local missing=() p
  for p in "$@"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  ((${#missing[@]} == 0)) && return 0
  echo "== installing ${missing[*]}"
  local sudo=""
  [[ $(id -u) -ne 0 ]] && sudo=sudo
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" ||
    { $sudo apt-get update -qq &&
      DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"; }
}

# Makes (once) and prints the path of the cached bookworm minbase tarball.
rd_bookworm_base() {
  if [[ -s "$RD_BASE_TAR" ]]; then echo "$RD_BASE_TAR"; return; fi
  rd_need_packages debootstrap >&2
  mkdir -p "$RD_CACHE_DIR"
  local dir mirror
  dir=$(mktemp -d "$RD_CACHE_DIR/rootfs.XXXXXX")
  mirror=$(rd_debian_mirror)
  echo "== debootstrap --variant=minbase bookworm from $mirror (cached in $RD_BASE_TAR)" >&2
  if ! debootstrap --variant=minbase bookworm "$dir" "$mirror" >"$dir.log" 2>&1; then
    tail -20 "$dir.log" >&2
    rm -rf "$dir" "$dir.log"
    return 1
  fi
  # Leave no apt lists or caches in the base (images built on it run apt-get update anyway).
  rm -rf "$dir"/var/lib/apt/lists/* "$dir"/var/cache/apt/archives/*.deb
  chmod 0755 "$dir"   # mktemp made it 0700: the tarball's "." becomes the root directory
  tar -C "$dir" --numeric-owner -cf "$RD_BASE_TAR.tmp" .
  mv "$RD_BASE_TAR.tmp" "$RD_BASE_TAR"
  rm -rf "$dir" "$dir.log"
  echo "$RD_BASE_TAR"
}
