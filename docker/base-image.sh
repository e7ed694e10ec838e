#!/usr/bin/env bash
# Makes a `debian:12-slim` equivalent as a local buildah image, for machines
# where no registry serves base images (CI and the development machines):
# `debootstrap --variant=minbase bookworm`, slimmed as Debian's official
# images are (debuerreotype's dpkg path excludes: no docs, man pages or
# locales; apt's docker-clean settings), the bookworm, bookworm-updates and
# bookworm-security sources of the official image, upgraded to the newest
# packages of those three suites.
#
#   bash docker/base-image.sh [TAG]        TAG defaults to debian:12-slim
#
# Written by hand because Debian packages no tool that does this: debootstrap
# makes the tree, buildah imports it; mmdebstrap/debuerreotype would add a
# second bootstrapper for the same result.
#
# Cache: the finished image is kept as an OCI archive in
# $EMBEDQ_BASE_CACHE (default /var/cache/embedq/base) under a key made of the
# suite, the package set (this script's own text, which holds every list),
# and the Date of the three suites' InRelease files on the mirror: when the
# archive publishes anything new, the key changes and the base is made again.
# An archive is used only when its sha256 (written next to it when it was
# made) still matches and the cache directory is root's alone (not group- or
# world-writable), so nobody else can plant a base. Old keys are removed.
#
# Environment: EMBEDQ_DEBIAN_MIRROR (default http://deb.debian.org/debian),
# EMBEDQ_DEBIAN_SECURITY (default http://deb.debian.org/debian-security);
# buildah's own (CONTAINERS_STORAGE_CONF, STORAGE_DRIVER, BUILDAH_ISOLATION).
# Needs root (debootstrap), debootstrap, buildah, curl.
set -euo pipefail
tag=${1:-debian:12-slim}
suite=bookworm
mirror=${EMBEDQ_DEBIAN_MIRROR:-http://deb.debian.org/debian}
security=${EMBEDQ_DEBIAN_SECURITY:-http://deb.debian.org/debian-security}
cache=${EMBEDQ_BASE_CACHE:-/var/cache/embedq/base}
export BUILDAH_ISOLATION=${BUILDAH_ISOLATION:-chroot}
export STORAGE_DRIVER=${STORAGE_DRIVER:-vfs}

say() { echo "base-image: $*"; }
die() { echo "base-image: $*" >&2; exit 1; }
[ "$(id -u)" -eq 0 ] || die "needs root (debootstrap)"
for t in debootstrap buildah curl sha256sum; do
  command -v "$t" >/dev/null || die "$t is not installed"
done

# ---- the key -------------------------------------------------------------------
release_date() { # URL of a suite's dists/ directory -> its InRelease Date
  curl -fsS --max-time 60 "$1/InRelease" | sed -n 's/^Date: //p' | head -1
}
dates=""
for d in "$mirror/dists/$suite" "$mirror/dists/$suite-updates" "$security/dists/$suite-security"; do
  v=$(release_date "$d") || die "cannot read $d/InRelease (is the Debian mirror reachable?)"
  [ -n "$v" ] || die "$d/InRelease has no Date"
  dates+="$d $v"$'\n'
done
key=$( { echo "$suite"; cat "$0"; printf '%s' "$dates"; } | sha256sum | cut -c1-16)
archive="$cache/$suite-$key.oci.tar"

# ---- an image with this key already in buildah's storage ------------------------
have=$(buildah inspect --type image --format '{{index .OCIv1.Config.Labels "org.embedq.base-key"}}' "$tag" 2>/dev/null || true)
if [ "$have" = "$key" ]; then
  say "$tag is current (key $key)"
  exit 0
fi

# ---- the cached archive ---------------------------------------------------------
[ -d "$cache" ] || { mkdir -p "$cache" && chmod 0755 "$cache"; }
owner=$(stat -c %u "$cache")
perm=$(stat -c %a "$cache")
safe=1
{ [ "$owner" -eq 0 ] && [ $((8#$perm & 8#022)) -eq 0 ]; } || safe=0
if [ "$safe" -eq 1 ] && [ -f "$archive" ] && [ -f "$archive.sha256" ]; then
  if (cd "$cache" && sha256sum --quiet -c "$(basename "$archive").sha256"); then
    buildah rmi -f "$tag" >/dev/null 2>&1 || true
    id=$(buildah pull --quiet "oci-archive:$archive")
    buildah tag "$id" "$tag"
    say "$tag from the cache ($archive, sha256 verified)"
    exit 0
  fi
  say "cached $archive fails its sha256: making it again"
elif [ "$safe" -eq 0 ]; then
  say "$cache is not root's alone (owner $owner, mode $perm): not using a cache"
fi

# ---- made here --------------------------------------------------------------------
t0=$(date +%s)
tmp=$(mktemp -d /var/tmp/embedq-base.XXXXXX)
ctr=""
cleanup() {
  [ -n "$ctr" ] && buildah rm "$ctr" >/dev/null 2>&1 || true
  rm -rf "$tmp"
}
trap cleanup EXIT
root="$tmp/rootfs"
say "debootstrap --variant=minbase $suite from $mirror"
debootstrap --variant=minbase "$suite" "$root" "$mirror" >"$tmp/debootstrap.log" 2>&1 \
  || { tail -20 "$tmp/debootstrap.log" >&2; die "debootstrap failed"; }

# Debian's official image settings (debuerreotype-slimify, docker-apt-config).
cat >"$root/etc/dpkg/dpkg.cfg.d/docker" <<'EOF'
# as debian:12-slim: no documentation, man pages or translations
path-exclude /usr/share/doc/*
path-include /usr/share/doc/*/copyright
path-exclude /usr/share/groff/*
path-exclude /usr/share/info/*
path-exclude /usr/share/linda/*
path-exclude /usr/share/lintian/*
path-exclude /usr/share/locale/*
path-include /usr/share/locale/locale.alias
path-exclude /usr/share/man/*
EOF
cat >"$root/etc/dpkg/dpkg.cfg.d/docker-apt-speedup" <<'EOF'
# as Debian's images: installs happen in image builds, which restart clean
force-unsafe-io
EOF
cat >"$root/etc/apt/apt.conf.d/docker-clean" <<'EOF'
DPkg::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
APT::Update::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
Dir::Cache::pkgcache "";
Dir::Cache::srcpkgcache "";
EOF
cat >"$root/etc/apt/apt.conf.d/docker-no-languages" <<'EOF'
Acquire::Languages "none";
EOF
cat >"$root/etc/apt/apt.conf.d/docker-gzip-indexes" <<'EOF'
Acquire::GzipIndexes "true";
EOF
cat >"$root/etc/apt/apt.conf.d/docker-autoremove-suggests" <<'EOF'
Apt::AutoRemove::SuggestsImportant "false";
EOF
rm -f "$root/etc/apt/sources.list"
cat >"$root/etc/apt/sources.list.d/debian.sources" <<EOF
Types: deb
URIs: $mirror
Suites: $suite $suite-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: $security
Suites: $suite-security
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
EOF
find "$root/usr/share/doc" -mindepth 1 -not -name copyright -not -type d -delete 2>/dev/null || true
find "$root/usr/share/doc" -mindepth 1 -type d -empty -delete 2>/dev/null || true
rm -rf "$root"/usr/share/{groff,info,linda,lintian,man}/* "$root"/var/cache/apt/*.bin \
       "$root"/var/cache/apt/archives/*.deb "$root"/var/lib/apt/lists/* \
       "$root"/var/log/* "$root"/tmp/* "$root"/root/.cache
find "$root/usr/share/locale" -mindepth 1 -maxdepth 1 -not -name locale.alias -exec rm -rf {} +
: >"$root/etc/machine-id"
echo "debian" >"$root/etc/hostname"
tar -C "$root" --numeric-owner --xattrs -cf "$tmp/rootfs.tar" .
rm -rf "$root"

ctr=$(buildah from scratch)
buildah add --quiet "$ctr" "$tmp/rootfs.tar" / >/dev/null
buildah config --env PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
  --cmd bash --label "org.embedq.base-key=$key" \
  --label "org.embedq.base=debootstrap --variant=minbase $suite, slimmed, upgraded" "$ctr"
say "apt-get upgrade from $suite, $suite-updates, $suite-security"
buildah run "$ctr" -- sh -c 'apt-get update -qq && DEBIAN_FRONTEND=noninteractive \
  apt-get -y -qq --no-install-recommends dist-upgrade >/dev/null && rm -rf /var/lib/apt/lists/* /var/log/apt/* /var/log/dpkg.log' \
  >"$tmp/upgrade.log" 2>&1 || { tail -20 "$tmp/upgrade.log" >&2; die "apt-get upgrade failed"; }
buildah rmi -f "$tag" >/dev/null 2>&1 || true
buildah commit --quiet --rm "$ctr" "$tag" >/dev/null
ctr=""
say "$tag made in $(( $(date +%s) - t0 )) s (key $key)"

if [ "$safe" -eq 1 ]; then
  rm -f "$cache/$suite-"*.oci.tar "$cache/$suite-"*.oci.tar.sha256
  buildah push --quiet "$tag" "oci-archive:$archive.part" >/dev/null
  mv "$archive.part" "$archive"
  (cd "$cache" && sha256sum "$(basename "$archive")" >"$(basename "$archive").sha256")
  say "cached as $archive ($(du -m "$archive" | cut -f1) MiB)"
fi
