#!/usr/bin/env python3
"""Publishes an FLV file to an RTMP URL through librtmp (python-librtmp), paced by the tags'
timestamps like a live encoder: the library OBS's RTMP output is forked from.

usage: librtmp_publish.py FLV_FILE rtmp://HOST:PORT/APP/NAME
"""
import sys
import time

import librtmp


def tags(data):
    """Yields (timestamp_ms, tag bytes incl. previous-tag-size) of an FLV file."""
    at = 13  # FLV header (9) + PreviousTagSize0 (4)
    while at + 11 <= len(data):
        size = int.from_bytes(data[at + 1:at + 4], "big")
        ts = int.from_bytes(data[at + 4:at + 7], "big") | (data[at + 7] << 24)
        end = at + 11 + size + 4
        if end > len(data):
            return
        yield ts, data[at:end]
        at = end


def main():
    path, url = sys.argv[1], sys.argv[2]
    data = open(path, "rb").read()
    conn = librtmp.RTMP(url, live=True)
    conn.connect()
    stream = conn.create_stream(writeable=True)
    start = time.monotonic()
    # librtmp's RTMP_Write takes FLV data, the file header with the first tag (a write of the
    # header alone crashes python-librtmp 0.3), then whole tags.
    header = data[:13]
    for ts, tag in tags(data):
        delay = start + ts / 1000.0 - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        stream.write(header + tag)
        header = b""
    stream.close()
    conn.close()


if __name__ == "__main__":
    main()
