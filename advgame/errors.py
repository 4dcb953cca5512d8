"""The project's own errors: input that cannot be used (a config, a data file, a model path, a checkpoint,
judges that do not answer). Each message is one line naming what was wrong and what to do.

The command line turns these, and only these, into a one-line message and exit status 1: any other
exception is a bug and keeps its traceback.

    AdvGameError
    ├── ConfigError          a config value that cannot be used (also a ValueError)
    │   └── LauncherError    a launcher setting advgame does not support
    ├── DataError            a data file or source that cannot be read (also a ValueError)
    │   ├── SeedDataError    seed prompts
    │   └── TableError       a CSV/TSV file read strictly
    ├── ModelNotFoundError   a model path, alias or hub id (also a FileNotFoundError)
    ├── DeviceUnavailable    a device the config asks for is not on this machine (also a RuntimeError)
    ├── CheckpointError      a checkpoint that cannot be written or read (also a RuntimeError)
    ├── JudgeUnavailable     judges that cannot answer (also a RuntimeError)
    └── MissingExtraError    an optional dependency that is not installed (also an ImportError)

The subclasses live beside the code that raises them; the second base keeps `except ValueError` (etc.)
in callers working.
"""

from __future__ import annotations


class AdvGameError(Exception):
    """Input the project cannot use; the message is one line saying what and why."""


class ConfigError(AdvGameError, ValueError):
    """A config that cannot be used. The message is one line naming the key, the value and what is allowed."""


class DataError(AdvGameError, ValueError):
    """A data file or source that cannot be read; the message names it and what was wrong."""
