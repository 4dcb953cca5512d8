"""uvicorn's h11 protocol with a request-header timeout (uvicorn has none: a client that connects and never
finishes its headers would hold the connection forever).

A timer is armed when a connection opens and after each response; if no new request has started when it
fires, the connection is closed. With `limit_concurrency` (the connection cap) this bounds what idle and
slow-header clients can hold.
"""

from __future__ import annotations

import asyncio


def guarded_h11_protocol(header_timeout: float):
    """The H11Protocol subclass to pass as uvicorn's `http=`."""
    from uvicorn.protocols.http.h11_impl import H11Protocol

    class GuardedH11Protocol(H11Protocol):
        _header_timer: asyncio.TimerHandle | None = None
        _armed_cycle = None

        def connection_made(self, transport):
            super().connection_made(transport)
            self._arm_header_timer()

        def on_response_complete(self):
            super().on_response_complete()
            self._arm_header_timer()

        def connection_lost(self, exc):
            self._cancel_header_timer()
            super().connection_lost(exc)

        def _arm_header_timer(self):
            self._cancel_header_timer()
            self._armed_cycle = self.cycle
            self._header_timer = self.loop.call_later(header_timeout, self._header_timeout)

        def _cancel_header_timer(self):
            if self._header_timer is not None:
                self._header_timer.cancel()
                self._header_timer = None

        def _header_timeout(self):
            self._header_timer = None
            if self.cycle is self._armed_cycle and not self.transport.is_closing():  # no request began since
                self.transport.close()

    GuardedH11Protocol.header_timeout = header_timeout
    return GuardedH11Protocol
