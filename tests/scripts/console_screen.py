#!/usr/bin/env python3
"""Finds a VM's screen in a browser's screenshot.

    console_screen.py SCREENSHOT.png SCREENDUMP.ppm

SCREENDUMP is QEMU's own picture of the VM's display (QMP screendump, a binary PPM). The
screenshot shows the console page; its canvas draws the VM's screen pixel for pixel (no scaling).
The canvas is found where the screendump's first row appears; the check passes when at least 99 %
of the screendump's pixels are found there, and the screen is not one colour. Prints what it
found; exits 1 when the screen is not there. Only the standard library: PNG (8-bit RGB/RGBA,
not interlaced, as Chromium writes them) is decoded here.
"""
import struct
import sys
import zlib


def read_png(path):
    data = open(path, "rb").read()
    if data[:8] != b"\x89PNG\r\n\x1a\n":
        raise SystemExit(f"{path} is not a PNG")
    pos, idat, width, height, channels = 8, b"", 0, 0, 0
    while pos < len(data):
        length, kind = struct.unpack(">I4s", data[pos:pos + 8])
        body = data[pos + 8:pos + 8 + length]
        pos += 12 + length
        if kind == b"IHDR":
            width, height, depth, color, _, _, interlace = struct.unpack(">IIBBBBB", body)
            if depth != 8 or color not in (2, 6) or interlace:
                raise SystemExit(f"{path}: PNG kind (depth {depth}, colour {color}, interlace {interlace}) not handled")
            channels = 3 if color == 2 else 4
        elif kind == b"IDAT":
            idat += body
    raw = zlib.decompress(idat)
    stride = width * channels
    rows, prev = [], bytearray(stride)
    for y in range(height):
        f = raw[y * (stride + 1)]
        line = bytearray(raw[y * (stride + 1) + 1:(y + 1) * (stride + 1)])
        for x in range(stride):
            a = line[x - channels] if x >= channels else 0
            b = prev[x]
            c = prev[x - channels] if x >= channels else 0
            if f == 1:
                line[x] = (line[x] + a) & 255
            elif f == 2:
                line[x] = (line[x] + b) & 255
            elif f == 3:
                line[x] = (line[x] + (a + b) // 2) & 255
            elif f == 4:
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                line[x] = (line[x] + (a if pa <= pb and pa <= pc else b if pb <= pc else c)) & 255
        rows.append([tuple(line[i:i + 3]) for i in range(0, stride, channels)])
        prev = line
    return width, height, rows


def read_ppm(path):
    data = open(path, "rb").read()
    fields, pos = [], 0
    while len(fields) < 4:
        while data[pos:pos + 1].isspace():
            pos += 1
        if data[pos:pos + 1] == b"#":
            pos = data.index(b"\n", pos)
            continue
        end = pos
        while not data[end:end + 1].isspace():
            end += 1
        fields.append(data[pos:end])
        pos = end
    pos += 1
    if fields[0] != b"P6" or fields[3] != b"255":
        raise SystemExit(f"{path} is not a binary PPM with 8-bit samples")
    width, height = int(fields[1]), int(fields[2])
    px = data[pos:pos + width * height * 3]
    return width, height, [[tuple(px[(y * width + x) * 3:(y * width + x) * 3 + 3]) for x in range(width)]
                           for y in range(height)]


def main():
    sw, sh, shot = read_png(sys.argv[1])
    dw, dh, dump = read_ppm(sys.argv[2])
    colours = {p for row in dump for p in row}
    print(f"screenshot {sw}x{sh}; VM screen {dw}x{dh} with {len(colours)} colours")
    if len(colours) < 2:
        print("FAIL: the VM's screen is one colour: nothing to recognise")
        return 1
    # The canvas's top-left corner: where the screendump's first non-uniform row starts.
    ry = next(y for y, row in enumerate(dump) if len(set(row)) > 1)
    best = (0, None)
    for y in range(ry, sh - dh + ry + 1):
        row = shot[y]
        for x in range(0, sw - dw + 1):
            if row[x:x + dw] == dump[ry]:
                top = y - ry
                same = sum(1 for j in range(dh) for i in range(dw) if shot[top + j][x + i] == dump[j][i])
                if same > best[0]:
                    best = (same, (x, top))
    total = dw * dh
    if best[1] is None:
        print("FAIL: the VM's screen is nowhere in the screenshot (a blank page, an error, or another screen)")
        return 1
    share = best[0] / total
    print(f"the VM's screen is at {best[1]} in the screenshot: {best[0]} of {total} pixels match ({share:.2%})")
    if share < 0.99:
        print("FAIL: fewer than 99 % of the pixels match")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
