#!/usr/bin/env python3
"""Record the first 1537 bytes (C0+C1) an RTMP client sends, then close.

Usage: capture.py OUT_FILE -- CLIENT_COMMAND_WITH_{port}
Listens on 127.0.0.1 (free port), starts the client with {port} substituted,
writes exactly C0+C1 to OUT_FILE, closes the connection and stops the client.
"""
import socket
import subprocess
import sys

C0_C1 = 1537


def main() -> int:
    out, cmd = sys.argv[1], sys.argv[3:]
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(1)
    srv.settimeout(10)
    port = srv.getsockname()[1]
    child = subprocess.Popen([a.replace("{port}", str(port)) for a in cmd],
                             stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL)
    try:
        conn, _ = srv.accept()
        conn.settimeout(10)
        data = b""
        while len(data) < C0_C1:
            part = conn.recv(C0_C1 - len(data))
            if not part:
                break
            data += part
        conn.close()
    finally:
        child.kill()
        child.wait(timeout=10)
    if len(data) != C0_C1:
        print(f"short capture: {len(data)} bytes", file=sys.stderr)
        return 1
    with open(out, "wb") as f:
        f.write(data)
    return 0


if __name__ == "__main__":
    sys.exit(main())
