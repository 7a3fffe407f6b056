"""The writer loop of the reliability scenarios (test_reliability_outages.py,
test_reliability_partition.py): one thread writing through a mount until told to stop, keeping
the record a scenario checks etcd against afterwards."""

import threading
import time


class Writer(threading.Thread):
    """Each round creates a new file w/<tag><i> and overwrites the file `last<-host>` with i.
    Records every write whose close() returned 0 (acknowledged), every error with its errno,
    and each successful write's latency. A round's overwrite that failed may or may not have
    landed (a timed-out request's outcome is unknown): last_unknown holds those since the last
    acknowledged one."""

    def __init__(self, mount, host: str = ""):
        super().__init__(daemon=True)
        self.mount, self.host = mount, host
        self.last_name = f"last-{host}" if host else "last"
        self.stop = threading.Event()
        self.acked_files: dict[str, bytes] = {}  # name under w/ -> content
        self.last_index = -1  # the round whose overwrite of `last` was acknowledged last
        self.last_unknown: set[bytes] = set()
        self.errors: list[str] = []
        self.errnos: list[int] = []
        self.latencies: list[tuple[float, float]] = []  # (start, seconds)

    def name_of(self, i: int) -> str:
        return f"{self.host}-{i:05d}" if self.host else f"{i:05d}"

    def content_of(self, i: int) -> bytes:
        return f"{self.name_of(i)} payload".encode()

    @property
    def last_acked(self):
        """The content of `last` acknowledged last (None before any)."""
        return str(self.last_index).encode() if self.last_index >= 0 else None

    def timed_write(self, path, data):
        t0 = time.monotonic()
        with open(path, "wb") as f:
            f.write(data)
        self.latencies.append((t0, time.monotonic() - t0))

    def run(self):
        i = 0
        while not self.stop.is_set():
            name, data = self.name_of(i), self.content_of(i)
            step = "create"
            try:
                self.timed_write(self.mount / "w" / name, data)
                self.acked_files[name] = data
                step = "overwrite"
                self.timed_write(self.mount / self.last_name, str(i).encode())
                self.last_index = i
                self.last_unknown.clear()
            except OSError as exc:
                self.errors.append(f"{name} {step}: {exc!r}")
                self.errnos.append(exc.errno)
                if step == "overwrite":
                    self.last_unknown.add(str(i).encode())
            i += 1
