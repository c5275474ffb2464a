"""What every hook and thread of a process using one credential shares.

Two pieces of state are per *credential*, not per hook, so every thread and every hook of a task
process that uses the same connection shares them (:func:`credential_state`): the time before which
an endpoint must not be called again after a ``429``/``503`` announced a wait, and the derived forms
of the secret (raw token, Basic ``base64(email:token)``) scrubbed from every error text built from a
response body.
"""

from __future__ import annotations

import base64
import hashlib
import re
import threading
import time
from typing import Any

_SCRUBBED = "***"


class CredentialState:
    """
    What every hook and thread of a process using one credential must share.

    * ``not_before``: per ``(method, path)``, the monotonic time a ``429``/``503`` told us to wait
      for. Nothing is sent to that endpoint before it, whichever thread or hook asks.
    * ``secrets``: every form of the credential (raw token, ``base64(email:token)``); error texts
      built from a response body have them replaced with ``***``.
    """

    def __init__(self, secrets: tuple[str, ...] = ()) -> None:
        self._lock = threading.Lock()
        self._not_before: dict[tuple[str, str], float] = {}
        #: Answers looked up once per task for every hook of the credential (the directory id
        #: discovered for an org); :func:`forget_all_task_memos` forgets them when a task begins.
        self.memo_lock = threading.Lock()
        self.memos: dict[Any, Any] = {}
        #: Whether the forms were registered with Airflow's secrets masker.
        self.masked = False
        self.secrets = tuple(sorted({s for s in secrets if s and len(s) >= 4}, key=len, reverse=True))
        self._pattern = re.compile("|".join(re.escape(s) for s in self.secrets)) if self.secrets else None

    def not_before(self, method: str, path: str) -> float:
        """The monotonic time before which ``method path`` must not be sent (0.0 when none)."""
        with self._lock:
            return self._not_before.get((method.upper(), path), 0.0)

    def wait_before(self, method: str, path: str, now: float | None = None) -> float:
        """Seconds until ``method path`` may be sent (0 when it may go now)."""
        now = time.monotonic() if now is None else now
        return max(0.0, self.not_before(method, path) - now)

    def announce(self, method: str, path: str, seconds: float, now: float | None = None) -> None:
        """Record that the server asked to wait ``seconds`` before calling ``method path`` again."""
        now = time.monotonic() if now is None else now
        key = (method.upper(), path)
        with self._lock:
            self._not_before[key] = max(self._not_before.get(key, 0.0), now + seconds)

    def forget_task_memos(self) -> None:
        """Forget what was looked up for the previous task."""
        with self.memo_lock:
            self.memos.clear()

    def scrub(self, text: str) -> str:
        """``text`` with every form of the credential replaced by ``***``."""
        return self._pattern.sub(_SCRUBBED, text) if self._pattern is not None and text else text


_CREDENTIALS: dict[str, CredentialState] = {}
_CREDENTIALS_LOCK = threading.Lock()


def credential_forms(password: str | None, login: str | None = None) -> tuple[str, ...]:
    """
    Every form in which a credential travels: the raw secret, and for Basic auth ``login:secret``
    and its base64 (what the ``Authorization`` header carries, and what an echoing server returns).

    :param password: the API token or Admin API key.
    :param login: the e-mail of a Basic-auth credential, or ``None`` for a Bearer key.
    :return: the forms, longest first; empty when there is no secret.
    """
    if not password:
        return ()
    forms = [password]
    if login:
        pair = f"{login}:{password}"
        encoded = base64.b64encode(pair.encode("latin-1", "replace")).decode("ascii")
        forms += [pair, encoded, encoded.rstrip("=")]
    return tuple(forms)


def credential_state(base_url: str, forms: tuple[str, ...]) -> CredentialState:
    """
    The process's one :class:`CredentialState` for this host and credential.

    Keyed by the host and a hash of the credential, so two connections with the same key share the
    announced waits, and the secret itself is never a dictionary key.

    :param base_url: the API's base URL.
    :param forms: :func:`credential_forms` of the credential.
    :return: the shared state.
    """
    digest = hashlib.sha256("\0".join((base_url.rstrip("/"), *forms)).encode()).hexdigest()
    with _CREDENTIALS_LOCK:
        state = _CREDENTIALS.get(digest)
        if state is None:
            state = _CREDENTIALS[digest] = CredentialState(forms)
        return state


def forget_all_task_memos() -> None:
    """Forget, for every credential of the process, what was looked up for the previous task."""
    with _CREDENTIALS_LOCK:
        for state in _CREDENTIALS.values():
            state.forget_task_memos()
