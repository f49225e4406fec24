#!/usr/bin/env python3
"""Writes the seed corpus seeds/<target>/ from the captured vectors in core/tests/vectors/.

Every seed starts with the byte the targets use to seed their split sizes and other choices
(src/lib.rs `split`: 7 = pieces of up to 128 bytes; the fuzzer mutates it). Deterministic: rerun after the vectors change and commit the result.
    python3 core/fuzz/seeds/generate.py
"""
import pathlib
import shutil
import struct

HERE = pathlib.Path(__file__).resolve().parent
VECTORS = HERE.parent.parent / "tests" / "vectors"
HANDSHAKE = 1 + 1536 + 1536  # C0+C1+C2 / S0+S1+S2 at the start of each capture


def write(target, name, data, seed=0):
    (HERE / target).mkdir(exist_ok=True)
    (HERE / target / name).write_bytes(bytes([seed]) + data)


def chunk_records():
    """Round-trip records (fuzz_targets/chunk.rs `record`): a chunk size change, messages on
    one- two- and three-byte basic header ids, repeated deltas (fmt 3) and extended timestamps."""
    out = bytearray(b"\xff" + struct.pack("<H", 99))  # chunk size 100
    for selector, mode, ts, length in [(1, 2, b"\x00\x00\x00\x00", 300), (1, 1, struct.pack("<H", 23), 300),
                                       (1, 0, b"", 300), (4, 3, b"\x20", 17), (4, 0, b"", 17),
                                       (7, 2, b"\xff\xff\xff\x00", 250)]:
        out += bytes([selector, 8, mode]) + ts + bytes([1]) + struct.pack("<H", length)
        out += bytes((i * 7) & 0xFF for i in range(length))
    return bytes(out)


def ring_ops():
    """Pushes of growing size with reads, partial advances, a lag, catch-up and joins."""
    out = bytearray()
    for i in range(24):
        out += bytes([0x00 | (i % 2) << 3]) + struct.pack("<H", 20 + 13 * i) + bytes([23])
        out += bytes([0x12, 0x05, 0x00, 0x21])  # advance cursor 1 by 5, drain cursor 2
        if i % 5 == 4:
            out += bytes([0x03, 0x34, 0x10, 0x25])  # skip_lagged 0, cursor_since 3, head 2
    return bytes(out)


def main():
    targets = ("chunk", "amf0", "command", "ring", "codec", "handshake", "session_server",
               "session_client", "rtsp")
    for target in targets:
        shutil.rmtree(HERE / target, ignore_errors=True)
    for name, keep in (("publish_pcm_c2s", 10_000), ("publish_aac_c2s", 8_000), ("play_s2c", 12_000)):
        stream = (VECTORS / "chunk" / f"{name}.bin").read_bytes()[HANDSHAKE:]
        write("chunk", name, stream[:keep], seed=7)
    write("chunk", "records", chunk_records())
    for path in sorted((VECTORS / "amf0").glob("*.bin")):
        write("amf0", path.stem, path.read_bytes())
        write("command", path.stem, path.read_bytes())
    write("ring", "ops", ring_ops())
    # 44.1 kHz stereo sine from the PCM publish capture (inside the first audio message).
    pcm = (VECTORS / "chunk" / "publish_pcm_c2s.bin").read_bytes()[HANDSHAKE + 1200:][:4096]
    for config in (0x0E, 0x2F, 0x19, 0x3D, 0x4E, 0x8F):
        write("codec", f"config_{config:02x}", bytes([config]) + pcm)
    # Whole connections, handshake included (byte 1 of handshake / session_client seeds is the mode:
    # bit 0 publish, bit 1 digest client). Seed byte 7: pieces of up to 128 bytes.
    c2s = (VECTORS / "chunk" / "publish_pcm_c2s.bin").read_bytes()
    s2c = (VECTORS / "chunk" / "play_s2c.bin").read_bytes()
    write("handshake", "ffmpeg_c2s", bytes([2]) + c2s[:HANDSHAKE + 64], seed=7)
    write("handshake", "nginx_s2c", bytes([0]) + s2c[:HANDSHAKE + 64], seed=7)
    write("session_server", "ffmpeg_publish_pcm", c2s[:HANDSHAKE + 12_000], seed=7)
    aac = (VECTORS / "chunk" / "publish_aac_c2s.bin").read_bytes()
    write("session_server", "ffmpeg_publish_aac", aac[:HANDSHAKE + 6_000], seed=7)
    write("session_client", "nginx_play", bytes([2]) + s2c[:HANDSHAKE + 12_000], seed=7)
    write("rtsp", "ffmpeg_tcp", rtsp_session("RTP/AVP/TCP;unicast;interleaved=0-1"))
    write("rtsp", "gstreamer_udp", rtsp_session("RTP/AVP;unicast;client_port=40000-40001"))


def rtsp_session(transport):
    """A player's requests as ffmpeg sends them, an RTCP receiver report interleaved between
    two of them, and a keep-alive with a body."""
    url = "rtsp://127.0.0.1:8554/live/audio"
    out = bytearray()
    for cseq, (method, uri, extra) in enumerate([
            ("OPTIONS", url, ""), ("DESCRIBE", url, "Accept: application/sdp\r\n"),
            ("SETUP", url + "/trackID=0", f"Transport: {transport}\r\n"),
            ("PLAY", url, "Session: 0123456789abcdef\r\nRange: npt=0.000-\r\n")], start=1):
        out += f"{method} {uri} RTSP/1.0\r\n{extra}CSeq: {cseq}\r\nUser-Agent: Lavf59.27.100\r\n\r\n".encode()
    out += b"$\x01\x00\x20" + bytes([0x81, 201, 0, 7]) + bytes(28)
    out += b"GET_PARAMETER * RTSP/1.0\r\nCSeq: 5\r\nSession: 0123456789abcdef\r\nContent-Length: 2\r\n\r\nab"
    return bytes(out)


if __name__ == "__main__":
    main()
