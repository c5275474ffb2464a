"""A local SMTP server that accepts every message and stores it as an ``.eml`` file.

It stands in for the customer's mail relay in the demo and the integration tests, so warning
emails are really sent over SMTP and can be read back.

    python -m tools.smtp_sink --port 0 --maildir .demo/mail --url-file .demo/smtp.url
"""

from __future__ import annotations

import argparse
import signal
import socket
import threading
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path
from typing import Any

from aiosmtpd.controller import Controller


def free_port(host: str = "127.0.0.1") -> int:
    # aiosmtpd's readiness probe connects to the configured port, so port 0 cannot be used.
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


class _MaildirHandler:
    def __init__(self, maildir: Path) -> None:
        self.maildir = maildir
        self._lock = threading.Lock()
        self._count = 0
        #: Recipients refused with a permanent error (tests of a relay that fails some sends).
        self.refused: set[str] = set()
        #: (envelope recipients, MAIL FROM options) of each accepted message, in order.
        self.envelopes: list[tuple[list[str], list[str]]] = []

    async def handle_RCPT(self, server: Any, session: Any, envelope: Any, address: str, options: Any) -> str:
        if address.lower() in self.refused:
            return "550 5.1.1 Mailbox unavailable (refused by the test sink)"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        with self._lock:
            self._count += 1
            number = self._count
        content = envelope.original_content or envelope.content
        (self.maildir / f"{number:06d}.eml").write_bytes(content)
        self.envelopes.append((list(envelope.rcpt_tos), list(envelope.mail_options)))
        return "250 Message accepted for delivery"


class SmtpSink:
    """Run the sink in a background thread: ``with SmtpSink(maildir) as sink: sink.port``."""

    def __init__(
        self, maildir: str | Path, host: str = "127.0.0.1", port: int = 0, *, smtputf8: bool = False
    ) -> None:
        self.maildir = Path(maildir)
        self.maildir.mkdir(parents=True, exist_ok=True)
        self.host = host
        self.port = port or free_port(host)
        self._handler = _MaildirHandler(self.maildir)
        # SMTPUTF8 (RFC 6531) is off unless asked for: tests cover a relay with it and one without.
        self._controller = Controller(self._handler, hostname=host, port=self.port, enable_SMTPUTF8=smtputf8)

    @property
    def envelopes(self) -> list[tuple[list[str], list[str]]]:
        """(envelope recipients, MAIL FROM options) of each accepted message, in order."""
        return list(self._handler.envelopes)

    def refuse(self, *addresses: str) -> None:
        """Refuse these recipients from now on (``refuse()`` with no address accepts all again)."""
        self._handler.refused = {address.lower() for address in addresses}

    def __enter__(self) -> SmtpSink:
        self._controller.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._controller.stop()

    def messages(self) -> list[EmailMessage]:
        return [
            message_from_bytes(path.read_bytes(), policy=policy.default)  # type: ignore[misc]
            for path in sorted(self.maildir.glob("*.eml"))
        ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--maildir", required=True)
    parser.add_argument("--url-file")
    args = parser.parse_args()
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    with SmtpSink(args.maildir, args.host, args.port) as sink:
        address = f"smtp://{sink.host}:{sink.port}"
        print(f"SMTP sink listening on {address}, storing mail in {sink.maildir}", flush=True)
        if args.url_file:
            Path(args.url_file).write_text(address + "\n", encoding="utf-8")
        stop.wait()


if __name__ == "__main__":
    main()
