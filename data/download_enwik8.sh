#!/bin/sh
# Downloads enwik8 (the first 100,000,000 bytes of an English Wikipedia dump, the
# Hutter Prize file) and stores it gzip-compressed, as ByteCorpus reads it.
# Needs internet access; the tests never run it. Usage: data/download_enwik8.sh [DIR]
set -eu
dir="${1:-data}"
url="http://mattmahoney.net/dc/enwik8.zip"
mkdir -p "$dir"
cd "$dir"
if [ -f enwik8.gz ]; then echo "enwik8.gz already in $dir"; exit 0; fi
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
if command -v curl >/dev/null 2>&1; then curl -fL -o "$tmp/enwik8.zip" "$url"
else wget -O "$tmp/enwik8.zip" "$url"; fi
unzip -o -q "$tmp/enwik8.zip" -d "$tmp"
size="$(wc -c < "$tmp/enwik8" | tr -d ' ')"
[ "$size" = 100000000 ] || { echo "unexpected enwik8 size: $size bytes" >&2; exit 1; }
gzip -9 -c "$tmp/enwik8" > enwik8.gz.part && mv enwik8.gz.part enwik8.gz
echo "wrote $dir/enwik8.gz"
