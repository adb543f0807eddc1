"""``trackio://`` URI parsing: which data directory a store URI names."""

from __future__ import annotations

import os
from pathlib import Path
from urllib.parse import urlparse

SCHEME = "trackio"

# MLflow's model registry of a data directory: MLflow's own SQL registry store on this file, next
# to the Trackio project files but not named ``*.db`` (Trackio lists every ``*.db`` in its
# directory as a project, and the registry database is MLflow's, not an experiment).
REGISTRY_FILE = "mlflow-registry.sqlite"

URI_FORMS = (
    "'trackio://' (Trackio's default data directory: $TRACKIO_DIR, else $HF_HOME/trackio) or "
    "'trackio:///absolute/path/to/dir'"
)


def default_trackio_dir() -> Path:
    """The directory Trackio itself uses: ``$TRACKIO_DIR``, else ``$HF_HOME/trackio``.

    Resolved the way ``huggingface_hub`` resolves ``HF_HOME`` (``$XDG_CACHE_HOME/huggingface``,
    else ``~/.cache/huggingface``), without importing it.
    """
    if os.environ.get("TRACKIO_DIR"):
        return Path(os.environ["TRACKIO_DIR"]).expanduser()
    hf_home = os.environ.get("HF_HOME")
    if not hf_home:
        cache = os.environ.get("XDG_CACHE_HOME") or os.path.join("~", ".cache")
        hf_home = os.path.join(cache, "huggingface")
    return Path(hf_home).expanduser() / "trackio"


def data_dir_from_uri(store_uri: str) -> Path:
    """Return the data directory of a ``trackio`` store URI.

    >>> data_dir_from_uri("trackio:///tmp/runs")
    PosixPath('/tmp/runs')
    """
    from mlflow.exceptions import MlflowException

    def bad(why: str) -> MlflowException:
        return MlflowException.invalid_parameter_value(
            f"Invalid Trackio store URI {store_uri!r}: {why}. Use {URI_FORMS}."
        )

    if not isinstance(store_uri, str):
        raise bad("not a string")
    parsed = urlparse(store_uri)
    if parsed.scheme != SCHEME:
        raise bad(f"the scheme must be '{SCHEME}'")
    if parsed.netloc:
        raise bad(
            f"it names a host ({parsed.netloc!r}); a Trackio store is a local directory, "
            "and remote machines reach it through 'mytracker server' over http://"
        )
    if parsed.query or parsed.params or parsed.fragment:
        raise bad("query strings, parameters and fragments are not supported")
    if not parsed.path:
        if store_uri.rstrip("/") != "trackio:" or not store_uri.endswith("//"):
            raise bad("no directory given")
        return default_trackio_dir()
    if not parsed.path.startswith("/"):
        raise bad("the path is relative")
    return Path(os.path.normpath(parsed.path))


def directory_path(directory: str | os.PathLike) -> Path:
    """The absolute data directory a user names: a path, or a ``trackio`` URI given where a
    directory was asked for (taken as the store it names, never as a relative ``./trackio:``
    directory).

    >>> directory_path("trackio:///tmp/runs")
    PosixPath('/tmp/runs')
    """
    text = os.fspath(directory)
    if isinstance(text, str) and text.startswith(f"{SCHEME}:"):
        # A Path turns 'trackio:///x' into 'trackio:/x', which names the same directory.
        return data_dir_from_uri(text)
    return Path(os.path.abspath(text))


def store_uri(directory: str | os.PathLike | None = None) -> str:
    """The ``trackio`` store URI of a data directory (relative paths are made absolute; a
    ``trackio`` URI is taken as it is), or of Trackio's default directory.

    >>> store_uri("/tmp/runs")
    'trackio:///tmp/runs'
    >>> store_uri("trackio:///tmp/runs")
    'trackio:///tmp/runs'
    >>> store_uri()
    'trackio://'
    """
    if directory is None:
        return f"{SCHEME}://"
    if os.fspath(directory) in (f"{SCHEME}://", f"{SCHEME}:"):
        return f"{SCHEME}://"  # Trackio's default directory, however $TRACKIO_DIR changes
    return f"{SCHEME}://{directory_path(directory)}"


def chosen_store_uri(directory: str | os.PathLike | None, current_uri: str | None) -> str:
    """The store URI a user means: ``directory`` if given, else the ``trackio`` URI already in
    use (e.g. from ``mytracker.init``), else Trackio's default directory."""
    if directory is not None:
        return store_uri(directory)
    if current_uri and current_uri.startswith(f"{SCHEME}:"):
        return current_uri
    return store_uri()
