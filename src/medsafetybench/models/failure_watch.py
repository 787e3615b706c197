"""Giving up early on a server that fails every request the same way, and saying so while it retries.

An HTTP backend retries a failed request with backoff (up to `max_retries`). That is right for a server
that drops some requests; for one that answers every request with the same error (a 500 from a broken
deployment, a wrong route) it only makes the user wait (two items took 76 s to fail, silently). A
`FailureWatch` per model sees every failed attempt and every success:

- until the first success, a retry is announced once per attempt number and failure (`attempt n of m
  failed: ...; next try in s`), so a stuck run is never silent and never floods the terminal; after a
  success, retries are quiet again (logged at debug level);
- when `give_up_after` retries in a row (second or later attempts of a request, so a server that fails
  only first attempts is never stopped) failed with one identical message and nothing has succeeded,
  `check` raises a one-line `UserError` that stops the stage. 429 (rate limited) is never counted: the
  server asks to wait, and waiting works.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from ..errors import UserError

log = logging.getLogger("medsafetybench.models")

DEFAULT_GIVE_UP_AFTER = 6


@dataclass
class FailureWatch:
    """The failures of one model's requests, shared by all its concurrent requests (one event loop)."""

    name: str
    """Who is failing, for the messages (a model identity or safe base URL)."""
    give_up_after: int = DEFAULT_GIVE_UP_AFTER
    """Identical failed retries in a row, with no success, that stop the stage (0: never)."""
    succeeded: bool = False
    _message: str | None = None
    _streak: int = 0
    _seen: set[str] = field(default_factory=set)

    def success(self) -> None:
        """A request succeeded: the server works, so no later failure stops the stage."""
        self.succeeded = True
        self._streak = 0

    def failed(
        self, message: str, attempt: int, attempts: int, wait: float | None, *, rate_limited: bool = False
    ) -> None:
        """Record a failed attempt; announce the retry (while nothing has succeeded); raise when the server
        fails every request the same way.

        Args:
            message: the one-line, secret-free failure.
            attempt: which attempt failed, 1-based.
            attempts: attempts allowed in all.
            wait: seconds until the next try, or None when there is none (the request failed for good).
            rate_limited: an HTTP 429 (never counted towards giving up).

        Raises:
            UserError: `give_up_after` retries in a row failed with this message and none succeeded.
        """
        if not self.succeeded and not rate_limited and attempt >= 2:
            self._streak = self._streak + 1 if message == self._message else 1
            self._message = message
            if self.give_up_after and self._streak >= self.give_up_after:
                raise UserError(
                    f"{self.name}: every request fails the same way ({message}; {self._streak} "
                    "retries in a row, no request succeeded): stopped instead of retrying for "
                    "minutes; fix the server or the spec, then re-run the same command"
                )
        if wait is None:
            return
        key = f"{attempt}\0{message}"
        level = logging.DEBUG if self.succeeded or key in self._seen else logging.WARNING
        self._seen.add(key)
        log.log(
            level, "%s: attempt %d of %d failed: %s; next try in %.1f s", self.name, attempt, attempts, message, wait
        )
