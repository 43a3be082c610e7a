#!/usr/bin/env bash
# Builds a real-text training corpus from Debian packages (see the project's data notes):
# each source becomes OUT/<source>.jsonl, one {"text", "source"} object per document, ready for
#   halo data prepare --tokenizer DIR --input OUT --out runs/corpus/tokens
# Packages are fetched with apt-get download and unpacked with dpkg-deb -x (nothing is
# installed). Sources, and what a document is:
#   wordnet   wordnet-base: synset glosses (text after "| " in data.{noun,verb,adj,adv}), 100 a document
#   python    python3.11-doc: each reStructuredText source (html/_sources/**/*.rst.txt)
#   perl      perl-doc: each .pod file
#   fortunes  fortunes: each fortune file ("%" separator lines become blank lines)
#   bible     bible-kjv-text, read with the bible tool of bible-kjv: each book (verse lines unwrapped);
#             skipped with a warning when the tool does not run here
#   linux     linux-source-6.1 (only with --with-linux: a 140 MB download): each
#             Documentation/**/*.rst of the kernel tarball, translations excluded
# Text is decoded as UTF-8 (Latin-1 when that fails) with line endings normalised; markup is
# kept. Idempotent: a source whose .jsonl exists is skipped, downloaded .debs are kept in
# CACHE. The held-out evaluation text (shared/data/text/brown.txt) is never read as a source;
# at the end the output is checked not to contain sample sentences of it.
# Usage: scripts/prepare_corpus.sh [--out DIR] [--cache DIR] [--with-linux]
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
out=$root/runs/corpus/raw
cache=$root/runs/corpus/debs
with_linux=0
while [ $# -gt 0 ]; do
  case "$1" in
    --out) out=$2; shift 2 ;;
    --cache) cache=$2; shift 2 ;;
    --with-linux) with_linux=1; shift ;;
    -h|--help) sed -n '2,/^set -e/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) echo "prepare_corpus: unknown argument '$1' (see --help)" >&2; exit 2 ;;
  esac
done
shared=${HALO_SHARED:-$root/../shared}
mkdir -p "$out" "$cache"
out=$(cd "$out" && pwd)
cache=$(cd "$cache" && pwd)
if [ -d "$shared" ] && case "$out/" in "$(cd "$shared" && pwd)/"*) true ;; *) false ;; esac; then
  echo "prepare_corpus: --out must not be inside $shared" >&2
  exit 2
fi

# The path of PKG's .deb in the cache, downloading it the first time.
deb_of() {
  local pkg=$1 found
  found=$(ls "$cache/${pkg}"_*.deb 2>/dev/null | head -n 1 || true)
  if [ -z "$found" ]; then
    echo "prepare_corpus: downloading $pkg" >&2
    if ! (cd "$cache" && apt-get download -q "$pkg" >/dev/null 2>"$cache/$pkg.log"); then
      echo "prepare_corpus: apt-get download $pkg failed (see $cache/$pkg.log; try apt-get update)" >&2
      return 1
    fi
    rm -f "$cache/$pkg.log"
    found=$(ls "$cache/${pkg}"_*.deb | head -n 1)
  fi
  echo "$found"
}

# Unpacks PKG into a fresh scratch directory and prints its path.
unpack() {
  local dir
  dir=$(mktemp -d "$out/.unpack-XXXXXX")
  dpkg-deb -x "$(deb_of "$1")" "$dir"
  echo "$dir"
}

# Cleans the text of one source and writes OUT/NAME.jsonl (through a temporary file).
write_source() {
  python3 - "$@" <<'PY'
import json, os, re, sys
from pathlib import Path

kind, src, dest = sys.argv[1], Path(sys.argv[2]), Path(sys.argv[3])

def decode(data):
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        text = data.decode("latin-1")
    return text.replace("\r\n", "\n").replace("\r", "\n")

def read(path):
    return decode(path.read_bytes())

def files(pattern, exclude=None):
    return sorted(p for p in src.glob(pattern)
                  if p.is_file() and not p.is_symlink() and not (exclude and exclude in p.parts))

def documents():
    if kind == "wordnet":
        glosses = []
        for pos in ("noun", "verb", "adj", "adv"):
            for line in read(src / f"data.{pos}").split("\n"):
                if line.startswith("  ") or " | " not in line:
                    continue
                glosses.append(line.split(" | ", 1)[1].strip())
        for i in range(0, len(glosses), 100):
            yield "wordnet", "\n".join(glosses[i:i + 100])
    elif kind in ("python", "perl", "linux"):
        pattern = {"python": "**/*.rst.txt", "perl": "**/*.pod", "linux": "**/*.rst"}[kind]
        for path in files(pattern, exclude="translations" if kind == "linux" else None):
            yield str(path.relative_to(src)), read(path)
    elif kind == "fortunes":
        for path in files("*"):
            if path.suffix in (".dat", ".u8"):
                continue
            yield path.name, re.sub(r"(?m)^%$", "", read(path))
    elif kind == "bible":
        # "Book N" headers between blank lines; verses "  N text" wrapped onto lines without indent.
        book, lines = None, []
        blocks = read(src).split("\n\n")
        for block in blocks:
            block = block.strip("\n")
            header = re.fullmatch(r"(\S.*) (\d+)", block)
            if header:
                if header.group(1) != book and lines:
                    yield book, "\n".join(lines).strip() + "\n"
                    lines = []
                book = header.group(1)
                lines += ["", block, ""]
                continue
            for line in block.split("\n"):
                if re.match(r"\s+\d+ ", line) or not lines:
                    lines.append(line.strip())
                else:
                    lines[-1] += " " + line.strip()
        if lines:
            yield book, "\n".join(lines).strip() + "\n"
    else:
        raise SystemExit(f"unknown source kind {kind}")

tmp = dest.with_suffix(".jsonl.tmp")
count = 0
with open(tmp, "w", encoding="utf-8") as f:
    for name, text in documents():
        if text.strip():
            f.write(json.dumps({"text": text, "source": f"{kind}:{name}"}, ensure_ascii=False) + "\n")
            count += 1
if count == 0:
    tmp.unlink()
    raise SystemExit(f"prepare_corpus: {kind}: no documents found under {src}")
os.replace(tmp, dest)
PY
}

build() {
  local name=$1
  if [ -f "$out/$name.jsonl" ]; then
    echo "prepare_corpus: $name: done already ($out/$name.jsonl)"
    return 0
  fi
  echo "prepare_corpus: $name: building"
  local dir
  case "$name" in
    wordnet)
      dir=$(unpack wordnet-base); write_source wordnet "$dir/usr/share/wordnet" "$out/$name.jsonl" ;;
    python)
      dir=$(unpack python3.11-doc); write_source python "$dir/usr/share/doc/python3.11/html/_sources" "$out/$name.jsonl" ;;
    perl)
      dir=$(unpack perl-doc); write_source perl "$dir/usr/share/perl" "$out/$name.jsonl" ;;
    fortunes)
      dir=$(unpack fortunes); write_source fortunes "$dir/usr/share/games/fortunes" "$out/$name.jsonl" ;;
    bible)
      dir=$(unpack bible-kjv)
      dpkg-deb -x "$(deb_of bible-kjv-text)" "$dir"
      if ! "$dir/usr/bin/bible" -p "$dir/usr/lib" "gen1:1-rev22:21" >"$dir/kjv.txt" 2>"$dir/bible.err" \
          || [ ! -s "$dir/kjv.txt" ]; then
        echo "prepare_corpus: bible: the bible tool does not run here ($(head -c 200 "$dir/bible.err")); skipped" >&2
        rm -rf "$dir"
        return 0
      fi
      write_source bible "$dir/kjv.txt" "$out/$name.jsonl" ;;
    linux)
      dir=$(mktemp -d "$out/.unpack-XXXXXX")
      dpkg-deb --fsys-tarfile "$(deb_of linux-source-6.1)" \
        | tar -xO ./usr/src/linux-source-6.1.tar.xz | xz -dc \
        | tar -x -C "$dir" --wildcards 'linux-source-6.1/Documentation/*.rst' --exclude '*/translations/*'
      write_source linux "$dir/linux-source-6.1/Documentation" "$out/$name.jsonl" ;;
  esac
  rm -rf "$dir"
}

rm -rf "$out"/.unpack-*  # scratch left by an interrupted run
sources="wordnet python perl fortunes bible"
[ "$with_linux" -eq 1 ] && sources="$sources linux"
for s in $sources; do build "$s"; done

brown=$shared/data/text/brown.txt
if [ -f "$brown" ]; then
  # Long plain-ASCII sentences of the held-out text must not appear anywhere in the corpus.
  grep -E '^[A-Za-z ,.;]{120,}$' "$brown" | head -n 20 >"$out/.brown-probe" || true
  if [ -s "$out/.brown-probe" ] && grep -rFq -f "$out/.brown-probe" --include='*.jsonl' "$out"; then
    rm -f "$out/.brown-probe"
    echo "prepare_corpus: $out contains sentences of the held-out $brown: remove that text" >&2
    exit 1
  fi
  rm -f "$out/.brown-probe"
fi

echo "prepare_corpus: corpus in $out"
python3 - "$out" <<'PY'
import json, sys
from pathlib import Path
total_docs = total_chars = total_bytes = 0
for path in sorted(Path(sys.argv[1]).glob("*.jsonl")):
    docs = chars = 0
    with open(path, encoding="utf-8") as f:
        for line in f:
            docs += 1
            chars += len(json.loads(line)["text"].encode("utf-8"))
    size = path.stat().st_size
    total_docs, total_chars, total_bytes = total_docs + docs, total_chars + chars, total_bytes + size
    print(f"  {path.name:16} {docs:8d} documents {chars / 1e6:8.1f} MB of text ({size / 1e6:.1f} MB on disk)")
print(f"  {'total':16} {total_docs:8d} documents {total_chars / 1e6:8.1f} MB of text ({total_bytes / 1e6:.1f} MB on disk)")
PY
