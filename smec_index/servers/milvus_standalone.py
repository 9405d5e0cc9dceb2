"""A real Milvus 2.3.5 standalone server for tests and benchmarks, on loopback, in one folder.

The ``milvus`` package (``pip install 'smec-index[milvus-server]'``) ships the standalone
binary and ``milvus.MilvusServer``, which renders a config from a template and runs the
binary. :class:`MilvusStandalone` drives that handle so that:

* every file lives under ``base_dir``: binaries, config, logs, etcd, rocksmq and segment
  data. The exceptions are two tiny files whose folders the Milvus 2.3.5 binary chooses
  itself (not settable in milvus.yaml; it ignores $TMPDIR): its pid file, which it holds
  open, and ``server_id_<pid>``, whose path it logs. :meth:`stop` finds both from the
  server (its open files, its log) and removes them; the folders stay, since another
  server may be using them.
* every component advertises and dials 127.0.0.1 (``<component>.ip``), and the embedded
  etcd listens on 127.0.0.1 only, all on free ports, so two servers can run side by side.
* Milvus 2.3.5 still *binds* its gRPC ports and the health/metrics port to all interfaces
  (``":port"``): no 2.3.5 setting changes the bind address, only the advertised one.
  Run it on a machine, or in a network namespace, that nothing untrusted can reach.

Start takes about 10 s on 2 cores (4-5 s of it unpacking the binary).
"""

from __future__ import annotations

import atexit
import contextlib
import os
import re
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from smec_index.errors import SmecError

LOOPBACK = "127.0.0.1"
COMPONENTS = (
    "proxy",
    "rootCoord",
    "dataCoord",
    "queryCoord",
    "indexCoord",
    "dataNode",
    "queryNode",
    "indexNode",
)
# How the server reports the file it keeps its server id in, outside its base dir:
# [INFO] [sessionutil/session_util.go:1216] ["save server info into file"] [content=...]
# [filePath=<path>]
_SERVER_INFO_FILE = re.compile(r'"save server info into file"\].*?\[filePath=([^\]]+)\]')
_ETCD_CONFIG = """\
name: milvus-embedded
data-dir: {data_dir}
listen-client-urls: http://{ip}:{client}
advertise-client-urls: http://{ip}:{client}
listen-peer-urls: http://{ip}:{peer}
initial-advertise-peer-urls: http://{ip}:{peer}
initial-cluster: milvus-embedded=http://{ip}:{peer}
"""


def _free_ports(count: int) -> list[int]:
    """``count`` distinct ports free on loopback right now (held open until all are picked)."""
    sockets = []
    try:
        for _ in range(count):
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.bind((LOOPBACK, 0))
            sockets.append(sock)
        return [sock.getsockname()[1] for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


def _wait_bindable(port: int, seconds: float) -> bool:
    """Whether ``port`` can be bound on loopback (as MilvusServer binds it: without
    SO_REUSEADDR) within ``seconds``; a stopped server's port stays in TIME_WAIT up to 60 s."""
    deadline = time.monotonic() + seconds
    while True:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            try:
                sock.bind((LOOPBACK, port))
                return True
            except OSError:
                pass
        if time.monotonic() > deadline:
            return False
        time.sleep(1.0)


def _config_keys(template: str) -> set[str]:
    """The dotted keys of a ``milvus.yaml`` template; ``MilvusServer`` can set only these."""
    keys: set[str] = set()
    path: list[str] = []
    for line in template.splitlines():
        match = re.match(r"^( *)([A-Za-z0-9_]+):", line)
        if match:
            path = path[: len(match.group(1)) // 2] + [match.group(2)]
            keys.add(".".join(path))
    return keys


def _server_class() -> type:
    try:
        from milvus import MilvusServer
    except ImportError:
        raise SmecError(
            "a Milvus standalone server needs the milvus package; "
            "pip install 'smec-index[milvus-server]'"
        ) from None
    return MilvusServer


def server_info_files(log: Path) -> set[Path]:
    """The server-id files a Milvus server says (in its stdout log) it wrote."""
    with contextlib.suppress(OSError), log.open(encoding="utf-8", errors="replace") as lines:
        return {Path(m.group(1)) for line in lines if (m := _SERVER_INFO_FILE.search(line))}
    return set()


def _open_pid_files(pid: int, base_dir: Path) -> set[Path]:
    """``.pid`` files outside ``base_dir`` that process ``pid`` holds open (Linux /proc)."""
    found = set()
    with contextlib.suppress(OSError):
        for fd in os.scandir(f"/proc/{pid}/fd"):
            with contextlib.suppress(OSError):
                target = Path(os.readlink(fd.path))
                if target.suffix == ".pid" and not target.is_relative_to(base_dir):
                    found.add(target)
    return found


class MilvusStandalone:
    """One Milvus standalone server process; ``start`` returns once a client can connect.

    Args:
        base_dir: folder for all of the server's files (a temp dir in tests).
        timeout: seconds to wait for the server to accept a pymilvus client.
        extra_configs: more ``milvus.yaml`` settings by dotted key, e.g.
            ``{"queryNode.segcore.chunkRows": 1024}``; only keys the package's template
            has (anything else is an error, since ``MilvusServer`` would drop it silently).

    Use it as a context manager, or call :meth:`start` and :meth:`stop` (benchmarks that keep
    one server across runs). ``uri``, ``port``, ``pid``, ``storage`` (the local storage
    folder, which the Milvus connector's ``storage`` option reads sizes from) and
    ``startup_seconds`` are set by :meth:`start`.
    """

    def __init__(
        self,
        base_dir: str | os.PathLike[str],
        timeout: float = 60.0,
        extra_configs: dict[str, Any] | None = None,
    ) -> None:
        self.base_dir = Path(base_dir).resolve()
        self.timeout = timeout
        self.extra_configs = dict(extra_configs or {})
        self.uri = ""
        self.port = 0
        self.pid = 0
        self.startup_seconds = 0.0
        self.storage: Path | None = None
        self._server: Any = None
        self._proxy_port = 0  # kept for a restart: the same address, as a real server's

    def start(self) -> str:
        """Start the server and wait until it serves; return its URI (``http://127.0.0.1:PORT``)."""
        if self._server is not None:
            return self.uri
        began = time.perf_counter()
        self._server = server = self._configure()
        atexit.register(self.stop)
        try:
            server.start()
            self.pid = server.server_proc.pid
            self.port = server.listen_port
            self.uri = f"http://{LOOPBACK}:{self.port}"
            self.storage = Path(server.config.get("local_storage_dir"))
            self._wait_ready(began + self.timeout)
        except BaseException:
            self.stop()
            raise
        self.startup_seconds = time.perf_counter() - began
        return self.uri

    def _configure(self) -> Any:
        server_class = _server_class()
        # wait_for_started=False: MilvusServer would poll the health port for up to 180 s
        # even after the process died; _wait_ready watches the process and a real client.
        server = server_class(wait_for_started=False)
        server.set_base_dir(str(self.base_dir))
        config = server.config
        port_keys = sorted(key for key in config.configurable_items if key.endswith("_port"))
        ports = _free_ports(len(port_keys) + 2)
        proxy = port_keys.index("proxy_port")
        if self._proxy_port and self._proxy_port not in ports:
            if _wait_bindable(self._proxy_port, 90.0):
                ports[proxy] = self._proxy_port
        self._proxy_port = ports[proxy]
        config.update(**dict(zip(port_keys, ports, strict=False)))
        server.webservice_port = ports[-2]  # health and metrics (METRICS_PORT)
        known = _config_keys(config.template_text)
        unknown = sorted(set(self.extra_configs) - known)
        if unknown:
            raise SmecError(
                f"Milvus 2.3.5's milvus.yaml has no {', '.join(unknown)}; "
                "use keys from its config template"
            )
        for component in COMPONENTS:
            if f"{component}.ip" in known:  # 2.3 merged indexCoord into dataCoord: no ip
                config.set(f"{component}.ip", LOOPBACK)
        config.set("etcd.endpoints", f"{LOOPBACK}:{config.configs['etcd_port']}")
        config.set("etcd.config.path", str(self._write_etcd_config(config, ports[-1])))
        config.set("minio.address", LOOPBACK)
        for key, value in self.extra_configs.items():
            config.set(key, value)
        return server

    def _write_etcd_config(self, config: Any, peer_port: int) -> Path:
        """The embedded etcd's own config: client and peer listeners on loopback, free ports.

        The package's template has no ``etcd.config.path`` line, and ``MilvusServer`` only
        replaces keys its template has, so the line is added to a copy of the template.
        """
        path = self.base_dir / "configs" / "etcd.yaml"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(
            _ETCD_CONFIG.format(
                data_dir=config.get("etcd_data_dir"),
                ip=LOOPBACK,
                client=config.configs["etcd_port"],
                peer=peer_port,
            )
        )
        template = config.template_text
        if "\n  config:\n    path:" not in template:
            config.template_text = template.replace(
                "\netcd:\n", "\netcd:\n  config:\n    path: # set by smec_index\n", 1
            )
        return path

    def _wait_ready(self, deadline: float) -> None:
        from pymilvus import MilvusClient

        import smec_index.connectors.milvus  # noqa: F401 - pymilvus, past MILVUS_URI

        last_error = "no answer yet"
        while time.perf_counter() < deadline:
            if self._server.server_proc.poll() is not None:
                raise SmecError(
                    f"the Milvus server exited with code {self._server.server_proc.returncode} "
                    f"while starting; see {self.base_dir / 'logs'}"
                )
            try:
                client = MilvusClient(uri=self.uri, timeout=2.0)
                try:
                    client.list_collections(timeout=2.0)
                    return
                finally:
                    client.close()
            except Exception as exc:  # noqa: BLE001 - any failure means "not ready yet"
                last_error = str(exc).splitlines()[0][:200] if str(exc) else type(exc).__name__
            time.sleep(0.5)
        raise SmecError(
            f"the Milvus server at {self.uri} did not accept a client within {self.timeout:.0f} s "
            f"({last_error}); see {self.base_dir / 'logs'}"
        )

    def stop(self, grace: float = 3.0) -> None:
        """Stop the server through its handle: SIGTERM, ``grace`` seconds, then SIGKILL."""
        server, self._server = self._server, None
        atexit.unregister(self.stop)
        if server is None:
            return
        process = server.server_proc
        pid_files: set[Path] = set()  # read while it runs: it holds them open
        if process is not None and process.poll() is None:
            pid_files = _open_pid_files(process.pid, self.base_dir)
            process.terminate()
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(timeout=grace)
        server.stop()  # kills it if still running, closes the log files
        self._remove_files_outside(pid_files)

    def _remove_files_outside(self, pid_files: set[Path]) -> None:
        """Remove this server's files outside ``base_dir``: the server-id files it logged
        (named for its pid) and its pid file if it still holds this server's pid."""
        log = self.base_dir / "logs" / "milvus-stdout.log"
        for path in server_info_files(log):
            if path.name == f"server_id_{self.pid}":
                with contextlib.suppress(OSError):
                    path.unlink()
        for path in pid_files:
            with contextlib.suppress(OSError):
                if path.read_text().strip() == str(self.pid):
                    path.unlink()

    def __enter__(self) -> MilvusStandalone:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


@contextlib.contextmanager
def milvus_standalone(
    base_dir: str | os.PathLike[str],
    timeout: float = 60.0,
    extra_configs: dict[str, Any] | None = None,
) -> Iterator[MilvusStandalone]:
    """Run a Milvus 2.3.5 standalone server for the ``with`` block; yield its handle
    (``.uri``, ``.storage``).

    Args:
        base_dir: folder for all of the server's files (binaries, config, logs, data).
        timeout: seconds to wait until a pymilvus client can connect.
        extra_configs: more ``milvus.yaml`` settings by dotted key.

    The server is stopped when the block ends, also on exceptions.
    """
    with MilvusStandalone(base_dir, timeout=timeout, extra_configs=extra_configs) as server:
        yield server
