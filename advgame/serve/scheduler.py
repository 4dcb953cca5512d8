"""Who uses the model when, for `advgame serve`: one generation at a time, small requests first.

The model is used by one thread at a time (seeded sampling forks and reseeds torch's global RNG, so two
generations must never interleave their draws). A *large* request (prompt tokens + n x max_tokens above
`small_request_tokens`) runs alone among large ones; a *small* request that arrives while a large one is
running does not wait for it to finish: the large one pauses at its next decoder-layer forward (a hook on
the model; see `attach`), the small ones run to completion, and the large one carries on where it was,
its KV cache and RNG stream untouched (a small request's `fork_rng` restores the RNG state on exit).

`stop()` (server shutdown) makes every waiting request and the running generation's next forward raise
`GenerationCancelled`, so a shutdown never waits for a long generation.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager

import torch


class GenerationCancelled(RuntimeError):
    """The server is shutting down: this generation was stopped (or never started)."""


class Scheduler:
    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._owner: int | None = None  # thread using the model now
        self._small = 0  # small requests waiting or running
        self._large_thread: int | None = None
        self._large_lock = threading.Lock()
        self._hooks: list = []
        self.stopping = False
        self.preemptions = 0  # times a large generation paused for small ones (tests, logs)

    def stop(self) -> None:
        with self._cond:
            self.stopping = True
            self._cond.notify_all()

    def _raise_if_stopping(self) -> None:
        if self.stopping:
            raise GenerationCancelled("the server is shutting down")

    @contextmanager
    def slot(self, small: bool) -> Iterator[None]:
        """Hold the model for one generation (blocking; call from a worker thread, not the event loop)."""
        me = threading.get_ident()
        if small:
            with self._cond:
                self._small += 1
                try:
                    self._cond.wait_for(lambda: self._owner is None or self.stopping)
                    self._raise_if_stopping()
                except BaseException:
                    self._small -= 1
                    self._cond.notify_all()
                    raise
                self._owner = me
            try:
                yield
            finally:
                with self._cond:
                    self._owner = None
                    self._small -= 1
                    self._cond.notify_all()
            return
        while not self._large_lock.acquire(timeout=0.1):
            self._raise_if_stopping()
        try:
            with self._cond:
                self._cond.wait_for(lambda: (self._owner is None and self._small == 0) or self.stopping)
                self._raise_if_stopping()
                self._owner, self._large_thread = me, me
            try:
                yield
            finally:
                with self._cond:
                    self._owner, self._large_thread = None, None
                    self._cond.notify_all()
        finally:
            self._large_lock.release()

    def checkpoint(self) -> None:
        """Called before each decoder layer's forward: stop on shutdown; a large generation lets waiting small
        requests run first."""
        if self.stopping:
            raise GenerationCancelled("the server is shutting down")
        me = threading.get_ident()
        if me != self._large_thread or not self._small:
            return
        with self._cond:
            if not self._small:
                return
            self.preemptions += 1
            self._owner = None
            self._cond.notify_all()
            self._cond.wait_for(lambda: (self._small == 0 and self._owner is None) or self.stopping)
            self._raise_if_stopping()
            self._owner = me

    def attach(self, model: torch.nn.Module) -> None:
        """Hook `checkpoint` before the forward of the model and of each of its decoder layers (every module
        held in a ModuleList), so that a pause or a stop takes effect within one layer, prefill included."""
        targets = [model] + [
            m for mod in model.modules() if isinstance(mod, torch.nn.ModuleList) for m in mod
        ]
        for target in targets:
            self._hooks.append(target.register_forward_pre_hook(lambda _module, _args: self.checkpoint()))

    def detach(self) -> None:
        for handle in self._hooks:
            handle.remove()
        self._hooks.clear()
