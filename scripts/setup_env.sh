#!/usr/bin/env bash
# The environment of a checkout: the Tux Paint files of the offline data (photo
# cut-outs and backgrounds), then .venv (Python 3.11+) with dre_jax, its
# `train` extra and the extras given as $1 (default "data"); $PYTHON (default
# python3) creates the venv.
#
#   bash scripts/setup_env.sh [EXTRAS]     both steps
#   bash scripts/setup_env.sh --data-only  only the Tux Paint files
#   bash scripts/setup_env.sh --photos     only the natural-photo test set
#   bash scripts/setup_env.sh --train-photos  GCompris's photos, a folder to train on
#
# Tux Paint (Debian packages tuxpaint-stamps-default and tuxpaint-data): nothing
# to do when /usr/share/tuxpaint or data/tuxpaint/ has them; as root,
# `apt-get install`; without root, `apt-get download` and `dpkg-deb -x` into
# data/tuxpaint/, where dre_jax/data/tuxpaint_composites.py (LOCAL_DIR) finds
# them. DRE_SETUP_NO_ROOT=1 takes the path without root whatever the user and
# the system's files (a local copy). Safe to run again: it only installs what
# is missing.
#
# The natural-photo test set of scripts/natural_photos.py (Debian packages
# opencv-doc and darknet, test-only: dre_jax/data/folder.py TEST_ONLY) the same
# way: as root `apt-get install`, without root unpacked into data/photos/
# (folder.PHOTOS_LOCAL_DIR).
#
# GCompris's photos (Debian package gcompris-qt-data, not test-only) the same
# way into data/gcompris/ (gcompris.LOCAL_DIR), then written as image files
# into data/train_photos/gcompris/ by `python -m dre_jax.data.gcompris` (needs
# .venv): a folder for configs/folder.py.
set -euo pipefail
cd "$(dirname "$0")/.."

packages="tuxpaint-stamps-default tuxpaint-data"
local_dir=data/tuxpaint  # tuxpaint_composites.LOCAL_DIR
photo_packages="opencv-doc darknet"
photos_dir=data/photos  # folder.PHOTOS_LOCAL_DIR
gcompris_package="gcompris-qt-data"
gcompris_dir=data/gcompris  # gcompris.LOCAL_DIR

# The Tux Paint stamps and templates, under the prefix $1 (data/tuxpaint or "").
has_tuxpaint() {
  [ -d "$1/usr/share/tuxpaint/stamps" ] && [ -d "$1/usr/share/tuxpaint/templates" ]
}

# The photos of opencv-doc's examples and darknet's data, under the prefix $1.
has_photos() {
  [ -d "$1/usr/share/doc/opencv-doc/examples/data" ] && [ -d "$1/usr/share/darknet/data" ]
}

as_root() {
  [ "$(id -u)" = 0 ] && [ "${DRE_SETUP_NO_ROOT:-0}" = 0 ]
}

# GCompris's resource files, under the prefix $1.
has_gcompris() {
  [ -f "$1/usr/share/gcompris-qt/rcc/categorization.rcc" ]
}

# apt-get download of packages $2... into $1 as a user: the machine's package
# lists, else lists of our own (apt-get update into a temporary directory needs
# no root either).
download_debs() {
  local dest="$1"
  shift
  local packages="$*"
  if (cd "$dest" && apt-get download $packages >/dev/null 2>&1); then
    return 0
  fi
  echo "[setup] no package lists readable; apt-get update into a temporary directory"
  local state="$dest/apt"
  mkdir -p "$state/lists/partial" "$state/cache/archives/partial"
  local opts=(-o "Dir::State::Lists=$state/lists" -o "Dir::Cache=$state/cache"
              -o "Debug::NoLocking=1" -o "APT::Sandbox::User=$(id -un)")
  apt-get "${opts[@]}" update -qq >/dev/null
  (cd "$dest" && apt-get "${opts[@]}" download $packages >/dev/null)
}

# setup_debs WHAT CHECK DIR SIZE WARNING PACKAGES...: nothing to do when CHECK
# passes on DIR or (unless DRE_SETUP_NO_ROOT) on the system; as root, apt-get
# install; without root, apt-get download and dpkg-deb -x into DIR; WARNING
# when neither apt-get nor dpkg-deb is there.
setup_debs() {
  local what="$1" check="$2" dir="$3" size="$4" warning="$5"
  shift 5
  local packages="$*"
  if "$check" "$dir" || { [ "${DRE_SETUP_NO_ROOT:-0}" = 0 ] && "$check" ""; }; then
    return 0
  fi
  if as_root && command -v apt-get >/dev/null; then
    echo "[setup] apt-get install $packages ($size)"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $packages >/dev/null
    return 0
  fi
  if ! command -v apt-get >/dev/null || ! command -v dpkg-deb >/dev/null; then
    echo "[setup] warning: no apt-get/dpkg-deb for $what: $warning" >&2
    return 0
  fi
  echo "[setup] without root: apt-get download $packages ($size)"
  local tmp
  tmp="$(mktemp -d)"
  trap 'rm -rf "$tmp"' RETURN
  download_debs "$tmp" $packages
  echo "[setup] unpacking them with dpkg-deb -x into $dir/"
  mkdir -p "$dir"
  for deb in "$tmp"/*.deb; do
    dpkg-deb -x "$deb" "$dir"
  done
  "$check" "$dir" || {
    echo "[setup] error: $dir has no $what after unpacking" >&2
    return 1
  }
  echo "[setup] $what in $dir"
}

if [ "${1:-}" = "--photos" ]; then
  setup_debs "the natural-photo test set" has_photos "$photos_dir" "about 100 MB" \
    "scripts/natural_photos.py skips their photos" $photo_packages
  exit 0
fi
if [ "${1:-}" = "--train-photos" ]; then
  setup_debs "GCompris's photos" has_gcompris "$gcompris_dir" "about 45 MB" \
    "configs/folder.py needs another folder of photos" $gcompris_package
  if [ ! -x .venv/bin/python ]; then
    echo "[setup] error: no .venv to write the photos with: run bash scripts/setup_env.sh first" >&2
    exit 1
  fi
  .venv/bin/python -m dre_jax.data.gcompris
  exit 0
fi
setup_debs "the Tux Paint files" has_tuxpaint "$local_dir" "about 170 MB" \
  "install Tux Paint's stamps and data (tuxpaint.org) and set DRE_TUXPAINT_ROOT to its share/tuxpaint folder (with stamps/ and templates/)" \
  $packages
if [ "${1:-}" = "--data-only" ]; then
  exit 0
fi
extras="${1:-data}"

python="${PYTHON:-python3}"
if [ ! -x .venv/bin/python ]; then
  if ! "$python" -c 'import sys; sys.exit(sys.version_info < (3, 11))'; then
    echo "[setup] error: dre_jax needs Python 3.11 or newer, $python is $("$python" -V 2>&1): rerun with PYTHON=python3.11 (or newer)" >&2
    exit 1
  fi
  echo "[setup] creating .venv with $python"
  "$python" -m venv .venv
  .venv/bin/pip install -q --upgrade pip
fi
echo "[setup] pip install -e .[train,${extras}] (TensorFlow, JAX, ...: a few minutes the first time)"
.venv/bin/pip install -q -e ".[train,${extras}]"
