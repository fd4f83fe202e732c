# Minimal HTTP/1.0 GET for OTA bundles (plain http on the local network; integrity comes
# from the SHA-256 manifest, not from the transport).


class HttpSource:
    """read(name) -> bytes of <base_url>/<name>."""

    def __init__(self, base_url, timeout_s=10, max_bytes=200000, socket_mod=None):
        if socket_mod is None:
            import socket as socket_mod
        self.socket = socket_mod
        if not base_url.startswith("http://"):
            raise ValueError("OTA url must start with http://")
        rest = base_url[7:]
        host, _, path = rest.partition("/")
        self.host, _, port = host.partition(":")
        self.port = int(port) if port else 80
        self.path = "/" + path if path else "/"
        if not self.path.endswith("/"):
            self.path += "/"
        self.timeout_s = timeout_s
        self.max_bytes = max_bytes

    def read(self, name):
        s = self.socket.socket()
        try:
            s.settimeout(self.timeout_s)
            s.connect(self.socket.getaddrinfo(self.host, self.port)[0][-1])
            req = "GET %s%s HTTP/1.0\r\nHost: %s\r\n\r\n" % (self.path, name, self.host)
            s.send(req.encode())
            chunks = []
            size = 0
            while True:
                b = s.recv(1024)
                if not b:
                    break
                chunks.append(b)
                size += len(b)
                if size > self.max_bytes:
                    raise OSError("%s is larger than %d bytes" % (name, self.max_bytes))
        finally:
            s.close()
        data = b"".join(chunks)
        head, _, body = data.partition(b"\r\n\r\n")
        status = head.split(b"\r\n")[0].split()
        if len(status) < 2 or status[1] != b"200":
            raise OSError("GET %s: %s" % (name, b" ".join(status[1:]).decode()))
        return body
