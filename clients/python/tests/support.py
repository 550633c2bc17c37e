"""What the tests share: the server (LOCKCTL_TEST_DSN, a superuser on a
server with lockctl), bounded polling, and the paused-holder process."""

import os
import signal
import subprocess
import sys
import threading
import time
import unittest
import uuid

import psycopg

DSN = os.environ.get("LOCKCTL_TEST_DSN", "")
HERE = os.path.dirname(os.path.abspath(__file__))


def need_server(cls):
    return unittest.skipUnless(DSN, "LOCKCTL_TEST_DSN is not set")(cls)


def admin():
    return psycopg.connect(DSN, autocommit=True)


def unique(prefix):
    return f"{prefix}_{uuid.uuid4().hex[:10]}"


def poll(cond, bound, what):
    """Wait until cond() is true, checking every 20 ms, for at most bound
    seconds; fail the test with `what` otherwise."""
    deadline = time.monotonic() + bound
    while True:
        v = cond()
        if v:
            return v
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {bound} s waiting for {what}")
        time.sleep(0.02)


class Holder:
    """tests/holder.py in a child process, read line by line by a thread."""

    def __init__(self, driver, resource, ttl, table):
        self.proc = subprocess.Popen(
            [sys.executable, os.path.join(HERE, "holder.py"), DSN, driver, resource, str(ttl), table],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        self.lines = []
        self.cond = threading.Condition()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self):
        for line in self.proc.stdout:
            with self.cond:
                self.lines.append(line.rstrip("\n"))
                self.cond.notify_all()
        with self.cond:
            self.lines.append(None)
            self.cond.notify_all()

    def expect(self, prefix, bound=20):
        """The first line not read yet that starts with prefix."""
        deadline = time.monotonic() + bound
        with self.cond:
            while True:
                for i, line in enumerate(self.lines):
                    if line is None:
                        raise AssertionError(f"holder exited before printing {prefix!r}: {self.lines}")
                    if line.startswith(prefix):
                        del self.lines[: i + 1]
                        return line
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"holder did not print {prefix!r} in {bound} s: {self.lines}")
                self.cond.wait(left)

    def send(self, line):
        self.proc.stdin.write(line + "\n")
        self.proc.stdin.flush()

    def pause(self):
        self.proc.send_signal(signal.SIGSTOP)

    def resume(self):
        self.proc.send_signal(signal.SIGCONT)

    def finish(self):
        try:
            self.send("exit")
        except (BrokenPipeError, ValueError):
            pass
        try:
            self.proc.wait(20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        for f in (self.proc.stdin, self.proc.stdout):
            try:
                f.close()
            except (BrokenPipeError, OSError):
                pass
        return self.proc.returncode
