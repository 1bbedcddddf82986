"""kerasft's loggers: `logging.getLogger("kerasft")` and its children.

kerasft reports through these loggers and adds no handler of its own: an
application chooses where the records go (`logging.basicConfig(level=
logging.INFO)` shows them), and the `kerasft` command installs its handler
(`command_logging` below, the one place that writes to the terminal).
Callbacks keep Keras's `verbose` argument: with `verbose=1` they report one
line per event, printed like Keras's own callbacks until the application
configures logging, logged at INFO after that (`verbose_message`).
"""

from __future__ import annotations

import contextlib
import logging
import sys

ROOT = "kerasft"


def get_logger(name: str | None = None) -> logging.Logger:
    """Returns the `kerasft` logger, or its child `kerasft.<name>`."""
    return logging.getLogger(ROOT if name is None else f"{ROOT}.{name}")


class CommandHandler(logging.Handler):
    """The command's handler: INFO and below to stdout, the rest to stderr.

    The streams are looked up at each record, so a redirection made after
    set-up (pytest's capsys) is followed.
    """

    def __init__(self, prog):
        super().__init__()
        self.prog = prog

    def format(self, record):
        message = record.getMessage()
        if record.levelno < logging.WARNING:
            return message
        kind = {logging.WARNING: "warning", logging.ERROR: "error"}.get(
            record.levelno, "failed"
        )
        if getattr(record, "bare", False):
            return f"{self.prog}: {message}"
        return f"{self.prog}: {kind}: {message}"

    def emit(self, record):
        try:
            stream = (
                sys.stdout if record.levelno < logging.WARNING else sys.stderr
            )
            stream.write(self.format(record) + "\n")
            stream.flush()
        except Exception:  # noqa: BLE001 - logging's own policy
            self.handleError(record)


@contextlib.contextmanager
def command_logging(prog: str, *, quiet: bool = False, debug: bool = False):
    """Routes the `kerasft` logger to the terminal for one command.

    kerasft's records go to stdout (INFO, DEBUG with `debug`) and stderr
    (warnings and errors, prefixed with `prog`); with `quiet` only warnings
    and errors. Unless `debug`, TensorFlow's (absl) and JAX's own Python
    loggers show errors only. Everything is restored afterwards.
    """
    level = (
        logging.WARNING if quiet else logging.DEBUG if debug else logging.INFO
    )
    logger = get_logger()
    others = [] if debug else [logging.getLogger(n) for n in ("absl", "jax")]
    saved = (logger.level, [o.level for o in others])
    handler = CommandHandler(prog)
    logger.addHandler(handler)
    logger.setLevel(level)
    for other in others:
        other.setLevel(logging.ERROR)
    try:
        yield logger
    finally:
        logger.removeHandler(handler)
        logger.setLevel(saved[0])
        for other, other_level in zip(others, saved[1]):
            other.setLevel(other_level)


def verbose_message(name: str, message: str) -> None:
    """What a callback with `verbose=1` reports, the way Keras's do.

    Keras's callbacks print their `verbose` lines to stdout while
    interactive logging is on (`keras.config.is_interactive_logging_enabled`)
    and log them otherwise. kerasft does the same, except that once a
    handler is attached to the `kerasft` logger itself (the `kerasft`
    command attaches one, an application may too), the line goes to
    `kerasft.<name>` at INFO level so it lands where that handler sends it.
    """
    import keras

    logger = get_logger(name)
    if _has_own_handler(logger) or not (
        keras.config.is_interactive_logging_enabled()
    ):
        logger.info(message)
    else:
        sys.stdout.write(message + "\n")
        sys.stdout.flush()


def _has_own_handler(logger: logging.Logger) -> bool:
    """Whether `logger` or a `kerasft` ancestor (not the root) has one."""
    while logger is not None and logger.name.startswith(ROOT):
        if logger.handlers:
            return True
        logger = logger.parent if logger.propagate else None
    return False
