#!/usr/bin/env python3
"""Records real RTMP chunk streams for core/tests/chunk_capture.rs.

Starts a temporary nginx-rtmp on 127.0.0.1 and a small recording TCP proxy in front of it
(both on free ports), then runs three ffmpeg sessions through the proxy:

  publish_pcm_c2s.bin  client->server bytes of `ffmpeg ... -c:a pcm_s16le -f flv rtmp://...`
  publish_aac_c2s.bin  client->server bytes of the same publish with `-c:a aac`
  play_s2c.bin         server->client bytes of `ffmpeg -i rtmp://... -t 2 -f null -` while a
                       publisher (pcm_s16le, 11025 Hz stereo, straight to nginx) runs

Usage: python3 capture.py [OUTPUT_DIR]   (default: the directory of this script)
Everything it starts is stopped by process id before it exits.
"""

import os
import pathlib
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time

NGINX_MODULE = "/usr/lib/nginx/modules/ngx_rtmp_module.so"
DEADLINE_S = 30  # no session may take longer


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_listening(port):
    end = time.monotonic() + 10
    while time.monotonic() < end:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"nothing listens on 127.0.0.1:{port}")


class Proxy:
    """Accepts connections on `port`, forwards each to the upstream port and keeps the bytes
    of both directions, per connection, in order of acceptance."""

    def __init__(self, upstream):
        self.upstream = upstream
        self.sessions = []  # (client->server bytearray, server->client bytearray)
        self.listener = socket.socket()
        self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(4)
        self.port = self.listener.getsockname()[1]
        self.threads = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            server = socket.create_connection(("127.0.0.1", self.upstream))
            c2s, s2c = bytearray(), bytearray()
            self.sessions.append((c2s, s2c))
            for src, dst, log in ((client, server, c2s), (server, client, s2c)):
                t = threading.Thread(target=self._pump, args=(src, dst, log), daemon=True)
                t.start()
                self.threads.append(t)

    @staticmethod
    def _pump(src, dst, log):
        try:
            while True:
                data = src.recv(65536)
                if not data:
                    break
                log.extend(data)
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in (dst, src):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def finish(self):
        self.listener.close()
        for t in self.threads:
            t.join(timeout=5)


def ffmpeg_publish(url, codec, rate, seconds, source=""):
    args = ["ffmpeg", "-nostdin", "-hide_banner", "-loglevel", "error", "-re",
            "-f", "lavfi", "-i", f"sine=f=440:d={seconds}{source}", "-ac", "2", "-ar", str(rate),
            "-c:a", codec, "-f", "flv", url]
    return subprocess.Popen(args)


def run(args):
    subprocess.run(args, check=True, timeout=DEADLINE_S)


def main():
    out_dir = pathlib.Path(sys.argv[1] if len(sys.argv) > 1 else os.path.dirname(__file__))
    work = pathlib.Path(tempfile.mkdtemp(prefix="zerocast-capture-"))
    nginx_port = free_port()
    (work / "logs").mkdir()
    (work / "nginx.conf").write_text(f"""
load_module {NGINX_MODULE};
daemon off;
master_process off;
error_log {work}/err.log;
pid {work}/nginx.pid;
events {{}}
rtmp {{
    server {{
        listen 127.0.0.1:{nginx_port};
        chunk_size 4096;
        application live {{ live on; record off; }}
    }}
}}
""")
    nginx = subprocess.Popen(["nginx", "-p", str(work), "-c", str(work / "nginx.conf")])
    publisher = None
    try:
        wait_listening(nginx_port)
        proxy = Proxy(nginx_port)
        url = f"rtmp://127.0.0.1:{proxy.port}/live/a"

        # 1 and 2: publishers through the proxy, 2 s of 440 Hz each.
        for codec in ("pcm_s16le", "aac"):
            p = ffmpeg_publish(url, codec, 44100, 2)
            p.wait(timeout=DEADLINE_S)
            time.sleep(0.3)  # let nginx close the session

        # 3: a player through the proxy while a publisher talks to nginx directly. 11025 Hz
        # keeps the capture small although ffmpeg probes ~5 s before its 2 s of output;
        # 2048-sample source frames make each PCM message (1 + 8192 bytes) span three
        # 4096-byte chunks, so nginx's fmt 3 continuations are covered too.
        publisher = ffmpeg_publish(f"rtmp://127.0.0.1:{nginx_port}/live/a", "pcm_s16le",
                                   11025, 15, ":sample_rate=11025:samples_per_frame=2048")
        time.sleep(1.0)
        run(["ffmpeg", "-nostdin", "-hide_banner", "-loglevel", "error",
             "-i", url, "-t", "2", "-f", "null", "-"])
        proxy.finish()
    finally:
        for proc in (publisher, nginx):
            if proc is not None and proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(timeout=5)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()

    names = [("publish_pcm_c2s.bin", 0, 0), ("publish_aac_c2s.bin", 1, 0), ("play_s2c.bin", 2, 1)]
    if len(proxy.sessions) != len(names):
        raise RuntimeError(f"expected {len(names)} sessions, saw {len(proxy.sessions)}")
    for name, session, direction in names:
        data = bytes(proxy.sessions[session][direction])
        (out_dir / name).write_bytes(data)
        print(f"{name}: {len(data)} bytes")
    shutil.rmtree(work)


if __name__ == "__main__":
    main()
