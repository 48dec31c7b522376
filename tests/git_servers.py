"""Real git servers on loopback for the tests: bare repositories served over smart HTTP (`git http-backend`
behind a small threaded HTTP server with basic auth) and over SSH (Debian's openssh-server on a free port, with a
generated host key and user key)."""
from __future__ import annotations

import base64
import os
import shutil
import socket
import subprocess
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import unquote

SSHD = "/usr/sbin/sshd"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def bare_repo(root: Path, name: str) -> Path:
    path = root / name
    subprocess.run(["git", "init", "--quiet", "--bare", "--initial-branch=main", str(path)], check=True)
    return path


def refs(bare: Path) -> dict[str, str]:
    """ref -> object of a bare repository, read on the server side."""
    out = subprocess.run(["git", "for-each-ref", "--format=%(refname) %(objectname)"], cwd=bare,
                         capture_output=True, text=True, check=True).stdout
    return dict(line.split(" ", 1) for line in out.splitlines())


class GitHTTP:
    """`git http-backend` (CGI) for every bare repository under `root`, at http://127.0.0.1:PORT/NAME.git, for
    one user with a password. Requests are recorded as (method, path, user or None, status)."""

    def __init__(self, root: Path, user: str, password: str, host: str = "127.0.0.1", port: int = 0):
        self.root, self.user, self.password = root, user, password
        self.requests: list[tuple[str, str, str | None, int]] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # quiet
                pass

            def do_GET(self):
                self._serve()

            def do_POST(self):
                self._serve()

            def _body(self) -> bytes:
                if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
                    data = b""
                    while True:
                        size = int(self.rfile.readline().split(b";")[0].strip(), 16)
                        if size == 0:
                            self.rfile.readline()
                            return data
                        data += self.rfile.read(size)
                        self.rfile.readline()
                return self.rfile.read(int(self.headers.get("Content-Length") or 0))

            def _serve(self):
                path, _, query = self.path.partition("?")
                body = self._body() if self.command == "POST" else b""
                user = server.check(self.headers.get("Authorization", ""))
                if user is None:
                    server.requests.append((self.command, path, None, 401))
                    self.send_response(401)
                    self.send_header("WWW-Authenticate", 'Basic realm="git"')
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                env = {"PATH": os.environ["PATH"], "GIT_PROJECT_ROOT": str(server.root), "GIT_HTTP_EXPORT_ALL": "1",
                       "REQUEST_METHOD": self.command, "PATH_INFO": unquote(path), "QUERY_STRING": query,
                       "CONTENT_TYPE": self.headers.get("Content-Type", ""), "CONTENT_LENGTH": str(len(body)),
                       "REMOTE_USER": user, "REMOTE_ADDR": "127.0.0.1",
                       "GIT_PROTOCOL": self.headers.get("Git-Protocol", ""),
                       "HTTP_CONTENT_ENCODING": self.headers.get("Content-Encoding", "")}
                proc = subprocess.run(["git", "http-backend"], input=body, env=env, capture_output=True)
                head, _, payload = proc.stdout.partition(b"\r\n\r\n")
                if not _:
                    head, _, payload = proc.stdout.partition(b"\n\n")
                status, headers = 200, []
                for line in head.decode("latin-1").splitlines():
                    name, _, value = line.partition(":")
                    if name.lower() == "status":
                        status = int(value.split()[0])
                    elif name:
                        headers.append((name, value.strip()))
                server.requests.append((self.command, path, user, status))
                self.send_response(status)
                for name, value in headers:
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

        self.httpd = ThreadingHTTPServer((host, port), Handler)
        self.port = self.httpd.server_address[1]
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def check(self, header: str) -> str | None:
        if not header.startswith("Basic "):
            return None
        try:
            user, _, password = base64.b64decode(header[6:]).decode().partition(":")
        except ValueError:
            return None
        return user if (user, password) == (self.user, self.password) else None

    def url(self, name: str) -> str:
        return f"http://127.0.0.1:{self.port}/{name}"

    def __enter__(self) -> GitHTTP:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


class SSHServer:
    """Debian's sshd on a free loopback port, accepting one generated user key for the current user."""

    def __init__(self, folder: Path):
        self.folder = folder
        folder.mkdir(parents=True, exist_ok=True)
        self.host_key, self.user_key = folder / "host_key", folder / "user_key"
        for key in (self.host_key, self.user_key):
            subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "test", "-f", str(key)], check=True)
        shutil.copy(f"{self.user_key}.pub", folder / "authorized_keys")
        self.port = free_port()
        self.user = subprocess.run(["id", "-un"], capture_output=True, text=True, check=True).stdout.strip()
        (folder / "sshd_config").write_text("\n".join([
            f"HostKey {self.host_key}", f"AuthorizedKeysFile {folder / 'authorized_keys'}",
            f"PidFile {folder / 'sshd.pid'}", "PermitRootLogin prohibit-password", "StrictModes no",
            "PasswordAuthentication no", "KbdInteractiveAuthentication no", "UsePAM no", "PubkeyAuthentication yes",
            f"AllowUsers {self.user}", "X11Forwarding no", "AllowTcpForwarding no", "PrintMotd no", ""]))
        self.proc: subprocess.Popen | None = None

    def known_hosts_line(self) -> str:
        kind, key = Path(f"{self.host_key}.pub").read_text().split()[:2]
        return f"[127.0.0.1]:{self.port} {kind} {key}\n"

    def url(self, bare: Path) -> str:
        return f"ssh://{self.user}@127.0.0.1:{self.port}{bare}"

    def __enter__(self) -> SSHServer:
        Path("/run/sshd").mkdir(parents=True, exist_ok=True)  # sshd's privilege separation directory
        log = open(self.folder / "sshd.log", "wb")
        self.proc = subprocess.Popen([SSHD, "-D", "-e", "-f", str(self.folder / "sshd_config"), "-p", str(self.port),
                                      "-o", "ListenAddress=127.0.0.1"], stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"sshd exited: {(self.folder / 'sshd.log').read_text()[-500:]}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1) as sock:
                    if sock.recv(64).startswith(b"SSH-2.0"):
                        return self
            except OSError:
                time.sleep(0.1)
        raise RuntimeError("sshd did not answer within 30 s")

    def __exit__(self, *exc) -> None:
        if self.proc:
            self.proc.terminate()
            self.proc.wait(timeout=10)


if __name__ == "__main__":
    # in a container: python3 git_servers.py ROOT USER PASSWORD_FILE PORT (all interfaces of the container's own
    # network namespace; the test publishes the port on the host's loopback only)
    import sys

    root, user, password_file, port = sys.argv[1:5]
    server = GitHTTP(Path(root), user, Path(password_file).read_text().strip(), host="0.0.0.0", port=int(port))
    print(f"serving {root} on port {port}", flush=True)
    server.httpd.serve_forever()
