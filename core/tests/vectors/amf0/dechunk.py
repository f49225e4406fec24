# Minimal RTMP de-chunker for the captures of capture_proxy.py: prints each message and, given a
# prefix, writes AMF0 command (type 20) and data (type 18) payloads to PREFIX_<index>_t<type>.bin.
# Usage: python3 dechunk.py raw/conn1.c2s [PREFIX]   (direction taken from the .c2s / .s2c suffix)
import sys, struct
def messages(data, is_client):
    # Skip the handshake: C0+C1+C2 from the client, S0+S1+S2 from the server.
    pos = 1537 + 1536 if is_client else 1 + 1536 + 1536
    csize = 128; st = {}; out = []
    while pos < len(data):
        b = data[pos]; fmt = b >> 6; cs = b & 63; pos += 1
        if cs == 0: cs = 64 + data[pos]; pos += 1
        elif cs == 1: cs = 64 + data[pos] + 256 * data[pos+1]; pos += 2
        s = st.setdefault(cs, {"ts":0,"len":0,"type":0,"sid":0,"buf":b""})
        if fmt <= 2:
            ts = int.from_bytes(data[pos:pos+3], "big"); pos += 3
        if fmt <= 1:
            s["len"] = int.from_bytes(data[pos:pos+3], "big"); s["type"] = data[pos+3]; pos += 4
        if fmt == 0:
            s["sid"] = struct.unpack("<I", data[pos:pos+4])[0]; pos += 4
        if fmt <= 2 and ts == 0xFFFFFF:
            ts = int.from_bytes(data[pos:pos+4], "big"); pos += 4
        need = min(csize, s["len"] - len(s["buf"]))
        s["buf"] += data[pos:pos+need]; pos += need
        if len(s["buf"]) == s["len"]:
            out.append((cs, s["type"], s["sid"], s["buf"]))
            if s["type"] == 1: csize = int.from_bytes(s["buf"][:4], "big")
            s["buf"] = b""
    return out
if __name__ == "__main__":
    path = sys.argv[1]; prefix = sys.argv[2] if len(sys.argv) > 2 else None
    data = open(path, "rb").read()
    for i, (cs, t, sid, p) in enumerate(messages(data, path.endswith("c2s"))):
        print(i, "csid", cs, "type", t, "sid", sid, "len", len(p), p[:60])
        if prefix and t in (18, 20):
            open(f"{prefix}_{i:02d}_t{t}.bin", "wb").write(p)
