"""``mytracker.autolog()``: every framework MLflow can autolog, written into Trackio.

Enabling turns MLflow's usage telemetry off (unless the user chose), registers the ``trackio``
store, installs one log filter on MLflow's handler and one warnings hook, points MLflow at the
store and calls ``mlflow.autolog``; disabling undoes exactly those steps and puts back what was
there before (including "no tracking URI was set").
"""

from __future__ import annotations

import inspect
import logging
import os
import sys
import threading
import warnings
from dataclasses import dataclass, field
from types import FrameType
from typing import Any, Callable

_ENV_URI = "MLFLOW_TRACKING_URI"
# What `mytracker.autolog()` passes to `mlflow.autolog` unless the caller overrides it: models,
# input examples and signatures are MLflow-registry concepts that Trackio has no view for.
_DEFAULTS = {
    "log_models": False,
    "log_input_examples": False,
    "log_model_signatures": False,
    "silent": False,
}
# Where MLflow's autologging speaks from (`mlflow.utils.autologging_utils._logger` is shared by
# its `safety` and `logging_and_warnings` modules); `mlflow.tracking.fluent` reports enabling.
_AUTOLOG_LOGGER = "mlflow.utils.autologging_utils"
_LOGGERS = ("mlflow", _AUTOLOG_LOGGER, "mlflow.tracking.fluent")
# Lightning must be patched after its import finishes (see `_patch_lightning`).
_LIGHTNING_MODULES = ("lightning", "pytorch_lightning")
# MLflow 3 sends usage telemetry unless one of these is set; it reads them at `import mlflow`
# (whether to create its client) and again before API-call events; autologging events only
# check that the client exists.
_TELEMETRY_VARS = ("MLFLOW_DISABLE_TELEMETRY", "DO_NOT_TRACK")


class AutologFilter(logging.Filter):
    """Of MLflow's autologging output, let through only framework-version compatibility warnings
    and errors; every other MLflow record passes untouched.

    >>> logging.getLogger("mlflow").handlers[0].addFilter(AutologFilter())  # doctest: +SKIP
    """

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            return _keep(record)
        except Exception:
            # A filter that raises breaks the caller's logging call; when unsure, show it.
            return True


def _keep(record: logging.LogRecord) -> bool:
    if record.levelno >= logging.ERROR or isinstance(record.msg, BaseException):
        return True
    message = record.getMessage().lower()
    if not (record.name.startswith(_AUTOLOG_LOGGER) or "autologging" in message):
        return True  # not autologging output: not ours to judge
    return (
        # today's wording, and Lightning's own check ("Autologging is known to be compatible
        # with pytorch-lightning versions ...") rerouted as "MLflow autologging encountered a
        # warning: ..."
        "autologging is known to be compatible with" in message
        or "you are using an unsupported version of" in message  # before MLflow 2.16
        or ("autologging encountered a warning" in message and "compatible with" in message)
        # errors must never vanish
        or "encountered unexpected error during" in message
        or "exception raised while enabling autologging" in message
    )


@dataclass
class _Saved:
    """What enabling changed, as it was before the first enable."""

    tracking_uri: str | None
    env_uri: str | None
    loggers: dict[str, tuple[int, bool]]
    log_filter: AutologFilter
    telemetry_turned_off: bool
    filtered: list[logging.Filterer] = field(default_factory=list)
    # MLflow's Lightning callback class and its own `on_train_start`, while we wrap it.
    lightning_callback: tuple[type, Any] | None = None


_saved: _Saved | None = None
_pytorch_params: dict[str, Any] | None = None  # set while we owe Lightning a patch
_hooks_registered = False
_in_lightning_hook = threading.local()


def autolog(disable: bool = False, *, dir: str | os.PathLike | None = None, **kwargs: Any) -> None:
    """Autolog every supported framework into Trackio, or undo exactly that with ``disable=True``.

    ``dir`` is the Trackio data directory (default: the current ``trackio://`` tracking URI if
    there is one, else Trackio's own default); other keywords go to ``mlflow.autolog``.

    >>> import mytracker
    >>> mytracker.autolog()  # doctest: +SKIP
    >>> mytracker.autolog(disable=True)  # doctest: +SKIP
    """
    if disable:
        _disable()
    else:
        _enable(dir, kwargs)


def _enable(data_dir: str | os.PathLike | None, kwargs: dict[str, Any]) -> None:
    global _saved, _pytorch_params
    first = _saved is None
    # 0. Before `import mlflow`, which decides at import whether to start its telemetry client.
    telemetry_turned_off = first and _turn_off_telemetry()
    try:
        import mlflow
        from mlflow.exceptions import MlflowException
        from mlflow.tracking._tracking_service import utils as tracking_utils

        from mytracker.store import register
        from mytracker.store._uri import chosen_store_uri, data_dir_from_uri

        accepted = set(inspect.signature(mlflow.autolog).parameters) - {"disable"}
        unknown = sorted(set(kwargs) - accepted)
        if unknown:
            raise MlflowException.invalid_parameter_value(
                f"mytracker.autolog() got unknown option(s) {unknown}; "
                f"it accepts dir= and the options of mlflow.autolog: {sorted(accepted)}"
            )
        uri = chosen_store_uri(data_dir, tracking_utils._tracking_uri or os.environ.get(_ENV_URI))
        data_dir_from_uri(uri)  # a bad dir fails here, before anything else has changed
    except BaseException:
        if telemetry_turned_off:
            _restore_telemetry()
        raise

    # 1. Programmatic registration: works from a source checkout without the entry point.
    register()
    if first:
        _saved = _Saved(
            tracking_uri=tracking_utils._tracking_uri,
            env_uri=os.environ.get(_ENV_URI),
            loggers={n: (logging.getLogger(n).level, logging.getLogger(n).disabled) for n in _LOGGERS},
            log_filter=AutologFilter(),
            telemetry_turned_off=telemetry_turned_off,
        )
    try:
        # 2. The filter goes on MLflow's handler: the `mlflow` logger has its own handler and
        # propagate=False, and a logger's filter never sees its children's records. With
        # MLFLOW_CONFIGURE_LOGGING=false there is no handler; then filter the emitting loggers.
        mlflow_logger = logging.getLogger("mlflow")
        targets = mlflow_logger.handlers or [logging.getLogger(n) for n in _LOGGERS[1:]]
        for target in targets:
            if _saved.log_filter not in target.filters:
                target.addFilter(_saved.log_filter)
                _saved.filtered.append(target)
        # A framework's logging.config.dictConfig may have disabled MLflow's loggers; the
        # warnings and errors this filter promises to show must be able to reach the user.
        for name in _LOGGERS:
            logging.getLogger(name).disabled = False
        # 2b. Python warnings that MLflow's own autologging code triggers (see `_showwarning`).
        if first:
            _install_showwarning()
        # 3. The tracking URI.
        mlflow.set_tracking_uri(uri)
        # 4. Autolog. Lightning imported after `mlflow.autolog` hits a circular import inside
        # MLflow's own import hook and stays unpatched, so while it is not imported yet we keep
        # MLflow's hook off it and patch it from a wrapt post-import hook instead.
        params = {**_DEFAULTS, **kwargs}
        excluded = list(params.get("exclude_flavors") or [])
        if "pytorch" not in excluded and _lightning_pending():
            params["exclude_flavors"] = [*excluded, "pytorch"]
            _pytorch_params = params
            _register_lightning_hooks()
        else:
            _pytorch_params = None
            if "pytorch" not in excluded:
                _follow_trainer_log_every_n_steps()
        mlflow.autolog(**params)
    except BaseException:
        if first:
            _disable()
        raise


def _disable() -> None:
    global _saved, _pytorch_params
    if _saved is None:
        warnings.warn(
            "mytracker.autolog is not enabled; autolog(disable=True) changed nothing.",
            UserWarning,
            stacklevel=3,
        )
        return
    import mlflow

    saved, _saved, _pytorch_params = _saved, None, None
    try:
        # Keep MLflow's import hook off a Lightning that is still to be imported (see above).
        mlflow.autolog(disable=True, exclude_flavors=["pytorch"] if _lightning_pending() else None)
    finally:
        if saved.lightning_callback is not None:
            callback_class, on_train_start = saved.lightning_callback
            callback_class.on_train_start = on_train_start
        _uninstall_showwarning()
        if saved.telemetry_turned_off:
            _restore_telemetry()
        for target in saved.filtered:
            target.removeFilter(saved.log_filter)
        for name, (level, disabled) in saved.loggers.items():
            logger = logging.getLogger(name)
            logger.setLevel(level)
            logger.disabled = disabled
        mlflow.set_tracking_uri(saved.tracking_uri)  # None unsets MLFLOW_TRACKING_URI too
        if saved.env_uri is None:
            os.environ.pop(_ENV_URI, None)
        else:
            os.environ[_ENV_URI] = saved.env_uri


def _lightning_pending() -> bool:
    return not any(name in sys.modules for name in _LIGHTNING_MODULES)


def _register_lightning_hooks() -> None:
    # wrapt keeps hooks for the life of the process, so register once; the hook itself checks
    # whether autolog is (still) on when Lightning arrives.
    global _hooks_registered
    if _hooks_registered:
        return
    import wrapt

    for name in _LIGHTNING_MODULES:
        wrapt.register_post_import_hook(_patch_lightning, name)
    _hooks_registered = True


def _patch_lightning(module: Any) -> None:
    """Patch Lightning once its import has finished, as ``mlflow.autolog`` would have."""
    params = _pytorch_params
    # `mlflow.pytorch.autolog` imports the other Lightning package, which fires this hook again.
    if params is None or getattr(_in_lightning_hook, "active", False):
        return
    _in_lightning_hook.active = True
    try:
        import mlflow.pytorch
        from mlflow.utils.autologging_utils import (
            AUTOLOGGING_CONF_KEY_IS_GLOBALLY_CONFIGURED,
            AUTOLOGGING_INTEGRATIONS,
        )

        accepted = inspect.signature(mlflow.pytorch.autolog).parameters
        mlflow.pytorch.autolog(**{k: v for k, v in params.items() if k in accepted})
        # Mark it as configured by `mlflow.autolog`, so `mlflow.autolog(disable=True)` reverts it.
        AUTOLOGGING_INTEGRATIONS["pytorch"][AUTOLOGGING_CONF_KEY_IS_GLOBALLY_CONFIGURED] = True
        _follow_trainer_log_every_n_steps()
    except Exception as e:  # an import hook must not break the user's `import lightning`
        logging.getLogger(_AUTOLOG_LOGGER).warning(
            "Encountered unexpected error during pytorch autologging: %s", e
        )
    finally:
        _in_lightning_hook.active = False


def _follow_trainer_log_every_n_steps() -> None:
    """Make MLflow's Lightning callback log step metrics every ``Trainer(log_every_n_steps=n)``
    steps, as Lightning's own loggers do, unless ``mlflow.pytorch.autolog(log_every_n_step=...)``
    chose. MLflow's default (None) logs them once per epoch; Trackio is about per-step curves.
    Lightning must already be imported (MLflow's callback module imports it)."""
    if _saved is None or _saved.lightning_callback is not None:
        return
    import wrapt

    try:
        from mlflow.pytorch import _lightning_autolog
    except ImportError:  # no torch: MLflow cannot autolog Lightning either
        return
    # Not name-mangled: the class is defined at module level.
    callback_class = getattr(_lightning_autolog, "__MlflowPLCallback", None)
    on_train_start = getattr(callback_class, "__dict__", {}).get("on_train_start")
    if on_train_start is None:  # MLflow reshaped its callback: keep its own behaviour
        return

    @wrapt.decorator
    def follow_trainer(wrapped: Callable[..., Any], instance: Any, args: tuple, kwargs: dict):
        trainer = args[0] if args else kwargs.get("trainer")
        if getattr(instance, "log_every_n_step", 0) is None:
            instance.log_every_n_step = getattr(trainer, "log_every_n_steps", None)
        return wrapped(*args, **kwargs)

    callback_class.on_train_start = follow_trainer(on_train_start)
    _saved.lightning_callback = (callback_class, on_train_start)


# --- MLflow's usage telemetry -------------------------------------------------------------------


def _turn_off_telemetry() -> bool:
    """Set ``MLFLOW_DISABLE_TELEMETRY=true`` unless the user set either variable; True if set."""
    if any(name in os.environ for name in _TELEMETRY_VARS):
        return False  # the user's choice, either way
    os.environ[_TELEMETRY_VARS[0]] = "true"
    if "mlflow.telemetry" in sys.modules:
        # MLflow is imported: its client exists, and autologging events check only the client.
        from mlflow.telemetry import get_telemetry_client, set_telemetry_client

        client = get_telemetry_client()
        set_telemetry_client()  # with the variable set: no client
        if client is not None:
            client.flush(terminate=True)  # drops what it queued, stops its threads
    return True


def _restore_telemetry() -> None:
    os.environ.pop(_TELEMETRY_VARS[0], None)
    if "mlflow.telemetry" in sys.modules:
        from mlflow.telemetry import set_telemetry_client

        set_telemetry_client()  # as `import mlflow` would have


# --- Python warnings from MLflow's own autologging code ------------------------------------------

_MLFLOW_DIR = ""  # MLflow's package directory, set when the hook is installed
_next_showwarning: Callable[..., Any] = warnings.showwarning
# Still in the chain: someone replaced `warnings.showwarning` after us (e.g. a `catch_warnings`
# block around `autolog(disable=True)`), so disabling could only make the hook pass everything on.
_hook_in_chain = False


def _install_showwarning() -> None:
    global _MLFLOW_DIR, _next_showwarning, _hook_in_chain
    import mlflow

    _MLFLOW_DIR = os.path.dirname(os.path.abspath(mlflow.__file__)) + os.sep
    if not _hook_in_chain:  # installing twice would make the hook call itself
        _next_showwarning = warnings.showwarning
        warnings.showwarning = _showwarning
        _hook_in_chain = True


def _uninstall_showwarning() -> None:
    global _hook_in_chain
    if warnings.showwarning is _showwarning:
        warnings.showwarning = _next_showwarning
        _hook_in_chain = False


def _showwarning(message: Any, category: type, filename: str, lineno: int, *args: Any, **kw: Any):
    """``warnings.showwarning`` while autolog is on: drop a warning that MLflow's own autologging
    code set off (e.g. scikit-learn's FutureWarning when MLflow calls a metric with a renamed
    argument); pass everything else on, including warnings from the user's own calls."""
    try:
        issuer = _issuing_frame(filename, lineno) if _saved is not None else None
        hide = issuer is not None and _set_off_by_mlflow(issuer)
    except Exception:
        hide = False  # when unsure, show it
    if not hide:
        _next_showwarning(message, category, filename, lineno, *args, **kw)


def _issuing_frame(filename: str, lineno: int) -> FrameType | None:
    """The frame ``warnings.warn`` attributed the warning to (its ``stacklevel``)."""
    frame = sys._getframe(2)
    while frame is not None and (frame.f_code.co_filename, frame.f_lineno) != (filename, lineno):
        frame = frame.f_back
    return frame


def _set_off_by_mlflow(frame: FrameType | None) -> bool:
    """Walk outward from where the warning was raised. Framework code run as the original of an
    autologging patch counts as called by whoever called the patched function; the first MLflow
    frame that is neither decides: inside an autologging patch, it is MLflow's doing."""
    while frame is not None:
        code = frame.f_code
        if code.co_filename.startswith(_MLFLOW_DIR):
            if code.co_name != "_original_fn" or not _is_autologging_machinery(code):
                return _inside_autologging_patch(frame)
            frame = _caller_of_patched_function(frame)
            continue
        frame = frame.f_back
    return False


def _is_autologging_machinery(code: Any) -> bool:
    return code.co_filename.startswith(os.path.join(_MLFLOW_DIR, "utils", "autologging_utils"))


def _caller_of_patched_function(frame: FrameType | None) -> FrameType | None:
    while frame is not None and not frame.f_code.co_name.endswith("safe_patch_function"):
        frame = frame.f_back
    while frame is not None and (
        _is_autologging_machinery(frame.f_code)
        or frame.f_code.co_filename == os.path.join(_MLFLOW_DIR, "utils", "gorilla.py")
    ):
        frame = frame.f_back
    return frame


def _inside_autologging_patch(frame: FrameType | None) -> bool:
    while frame is not None:
        code = frame.f_code
        if code.co_name.endswith("safe_patch_function") and _is_autologging_machinery(code):
            return True
        frame = frame.f_back
    return False
