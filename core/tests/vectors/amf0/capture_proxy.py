# Logging TCP proxy: each accepted connection N is logged raw to connN.c2s / connN.s2c.
import socket, sys, threading
lport, rport, outdir = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
ls = socket.socket(); ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
ls.bind(("127.0.0.1", lport)); ls.listen(8)
n = 0
def pump(src, dst, path):
    with open(path, "wb") as f:
        while True:
            try: b = src.recv(65536)
            except OSError: b = b""
            if not b: break
            f.write(b); f.flush()
            try: dst.sendall(b)
            except OSError: break
    try: dst.shutdown(socket.SHUT_WR)
    except OSError: pass
while True:
    c, _ = ls.accept(); n += 1
    s = socket.create_connection(("127.0.0.1", rport))
    threading.Thread(target=pump, args=(c, s, f"{outdir}/conn{n}.c2s"), daemon=True).start()
    threading.Thread(target=pump, args=(s, c, f"{outdir}/conn{n}.s2c"), daemon=True).start()
