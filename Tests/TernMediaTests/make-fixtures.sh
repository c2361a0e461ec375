#!/usr/bin/env bash
# Generates the media test fixtures into DIR with the ffmpeg CLI (tiny files, a few KB each,
# except big.jpg: a 12-megapixel photo for the thumbnail benchmark). Deterministic inputs
# (lavfi test sources); run by the tests, never committed.
#   Tests/TernMediaTests/make-fixtures.sh DIR
set -euo pipefail
dir=$1
mkdir -p "$dir"
cd "$dir"
ff() { ffmpeg -hide_banner -loglevel error -y "$@"; }

# Pictures.
ff -f lavfi -i testsrc2=size=640x480:rate=1 -frames:v 1 photo.jpg
ff -f lavfi -i testsrc2=size=4000x3000:rate=1 -frames:v 1 -q:v 3 big.jpg
ff -f lavfi -i testsrc2=size=320x200:rate=1 -frames:v 1 image.png
ff -f lavfi -i testsrc2=size=320x200:rate=1 -frames:v 1 image.webp
ff -f lavfi -i testsrc2=size=160x120:rate=5 -frames:v 5 anim.gif

# Video: H.264/AAC MP4 (2 s), one with a 90° display rotation, 3GP, WebM, Matroska (refused).
ff -f lavfi -i testsrc2=size=320x240:rate=15 -f lavfi -i sine=frequency=440:sample_rate=44100 -t 2 \
   -c:v libx264 -pix_fmt yuv420p -preset ultrafast -c:a aac -b:a 64k video.mp4
ff -i video.mp4 -c copy -metadata:s:v:0 rotate=90 rotated.mp4
ff -f lavfi -i testsrc2=size=1920x1080:rate=25 -t 2 -c:v libx264 -pix_fmt yuv420p -preset ultrafast hd.mp4
ff -f lavfi -i testsrc2=size=176x144:rate=15 -t 2 -c:v h263 clip.3gp
ff -f lavfi -i testsrc2=size=320x240:rate=15 -f lavfi -i sine=frequency=440:sample_rate=48000 -t 2 \
   -c:v libvpx -b:v 200k -c:a libopus clip.webm
ff -i video.mp4 -c copy clip.mkv

# Audio: voice notes and songs as phones make them.
ff -f lavfi -i sine=frequency=300:sample_rate=48000 -t 2 -c:a libopus voice.ogg
ff -f lavfi -i sine=frequency=300:sample_rate=44100 -t 2 -c:a aac voice.m4a
ff -f lavfi -i sine=frequency=300:sample_rate=44100 -t 2 -c:a aac -f adts voice.aac
ff -f lavfi -i sine=frequency=300:sample_rate=44100 -t 2 -c:a libmp3lame song.mp3
ff -f lavfi -i sine=frequency=300:sample_rate=8000 -t 2 -c:a pcm_s16le sound.wav
# One second of silence, then one second of tone: a waveform with a quiet and a loud half.
ff -f lavfi -i anullsrc=r=48000:cl=mono:d=1 -f lavfi -i sine=frequency=300:sample_rate=48000:duration=1 \
   -filter_complex "[0][1]concat=n=2:v=0:a=1" -c:a libopus halfsilent.ogg

# Documents.
printf '%%PDF-1.4\n1 0 obj << /Type /Catalog >> endobj\ntrailer << /Root 1 0 R >>\n%%%%EOF\n' > doc.pdf
printf 'Meeting notes\nTernary — ünïcode text\n' > notes.txt
python3 - <<'PY'
import zipfile
with zipfile.ZipFile("archive.zip", "w") as z:
    z.writestr("hello.txt", "hello")
with zipfile.ZipFile("report.docx", "w") as z:
    z.writestr("[Content_Types].xml", "<Types/>")
    z.writestr("word/document.xml", "<document/>")
PY

# A phone photo: EXIF with orientation 6 (turn 90° clockwise to view) and a GPS position.
python3 - <<'PY'
import struct
def ifd(entries, next_offset=0):
    out = struct.pack("<H", len(entries))
    for tag, typ, count, value in entries:
        out += struct.pack("<HHI", tag, typ, count) + value
    return out + struct.pack("<I", next_offset)
# TIFF header (8) | IFD0 at 8: 2 entries (2+24+4 = 30) -> GPS IFD at 38: 3 entries (2+36+4 = 42) -> rationals at 80.
ifd0 = ifd([(0x0112, 3, 1, struct.pack("<HH", 6, 0)), (0x8825, 4, 1, struct.pack("<I", 38))])
gps = ifd([(0x0001, 2, 2, b"N\0\0\0"), (0x0002, 5, 3, struct.pack("<I", 80)), (0x0004, 5, 3, struct.pack("<I", 104))])
rationals = struct.pack("<6I", 52, 1, 31, 1, 4, 1) + struct.pack("<6I", 13, 1, 24, 1, 41, 1)
tiff = b"II*\0" + struct.pack("<I", 8) + ifd0 + gps + rationals
app1 = b"Exif\0\0" + tiff
data = open("photo.jpg", "rb").read()
assert data[:2] == b"\xff\xd8"
open("gps.jpg", "wb").write(data[:2] + b"\xff\xe1" + struct.pack(">H", len(app1) + 2) + app1 + data[2:])
PY

# Formats the ffmpeg CLI here cannot write, made by hand: an AMR-NB voice note (100
# "no data" frames of 20 ms), a HEIF/HEIC header, a legacy Office (OLE2) header.
python3 - <<'PY'
open("voice.amr", "wb").write(b"#!AMR\n" + bytes([0x7C]) * 100)
heic = b"\x00\x00\x00\x18ftypheic\x00\x00\x00\x00mif1heic" + b"\x00" * 64
open("photo.heic", "wb").write(heic)
open("legacy.doc", "wb").write(bytes([0xD0, 0xCF, 0x11, 0xE0, 0xA1, 0xB1, 0x1A, 0xE1]) + b"\x00" * 504)
PY

# Hostile or broken inputs.
head -c 1500 video.mp4 > truncated.mp4
printf '#EXTM3U\n#EXT-X-TARGETDURATION:10\n#EXTINF:10,\nfile:///etc/passwd\n#EXT-X-ENDLIST\n' > playlist.mp4
printf "ffconcat version 1.0\nfile '/etc/passwd'\n" > concat.mp4
: > empty.bin
head -c 4096 /dev/urandom > random.bin
python3 - <<'PY'
import struct, zlib
def chunk(kind, data):
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xffffffff)
# A PNG that claims 30000 x 30000 pixels (2.7 GB decoded) with a few bytes of data.
ihdr = struct.pack(">IIBBBBB", 30000, 30000, 8, 2, 0, 0, 0)
row = b"\x00" + b"\x00" * (30000 * 3)
with open("bomb.png", "wb") as f:
    f.write(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(row * 4, 9)) + chunk(b"IEND", b""))
PY
