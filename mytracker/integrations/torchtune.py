"""torchtune metric logger that writes into Trackio through MLflow.

A torchtune recipe builds its logger from the config's ``metric_logger`` section, and recipe
configs written for ``DiskLogger``/``TensorBoardLogger`` set ``log_dir``, which torchtune's own
``MLFlowLogger`` rejects (``TypeError: ... unexpected keyword argument 'log_dir'``). This one
accepts it::

    tune run full_finetune_single_device --config my.yaml \\
        metric_logger._component_=mytracker.integrations.torchtune.MLFlowLogger

or in YAML::

    metric_logger:
      _component_: mytracker.integrations.torchtune.MLFlowLogger
      log_dir: ${output_dir}/logs          # kept: where the resolved config is saved
      experiment_name: my-finetune         # optional; default MLFLOW_EXPERIMENT_NAME
      tracking_uri: trackio://             # optional; default MLFLOW_TRACKING_URI, else trackio://
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

try:
    from omegaconf import DictConfig, OmegaConf
    from torchtune.training.metric_logging import MLFlowLogger as _TorchtuneMLFlowLogger
    from torchtune.training.metric_logging import flatten_dict
except ImportError as error:  # pragma: no cover - depends on the environment
    raise ImportError(
        "mytracker.integrations.torchtune needs torchtune: pip install torchtune torchao"
    ) from error

__all__ = ["MLFlowLogger"]

DEFAULT_TRACKING_URI = "trackio://"


class MLFlowLogger(_TorchtuneMLFlowLogger):
    """torchtune's ``MLFlowLogger``, pointed at Trackio by default, that accepts ``log_dir``.

    >>> logger = MLFlowLogger(log_dir="/tmp/logs", experiment_name="finetune")  # doctest: +SKIP
    >>> logger.log_dict({"loss": 1.2, "lr": 3e-4}, step=1)  # doctest: +SKIP
    >>> logger.close()  # doctest: +SKIP
    """

    def __init__(
        self,
        experiment_name: str | None = None,
        tracking_uri: str | None = None,
        run_id: str | None = None,
        run_name: str | None = None,
        log_dir: str | os.PathLike | None = None,
        **kwargs: Any,
    ):
        # Other loggers' options in a shared recipe config (e.g. `organize_by`) mean nothing
        # to MLflow; accept and ignore them rather than fail the recipe at start-up.
        self.log_dir = Path(log_dir) if log_dir is not None else None
        # torchtune 0.6 reads `self._nested_run` but never sets it: with a run already active,
        # its __init__ raises AttributeError. Joining the active run is what a user expects.
        self._nested_run = False
        super().__init__(
            experiment_name=experiment_name,
            tracking_uri=tracking_uri or os.getenv("MLFLOW_TRACKING_URI") or DEFAULT_TRACKING_URI,
            run_id=run_id,
            run_name=run_name,
        )

    def log_config(self, config: DictConfig) -> None:
        """Log the resolved recipe config as flat params, and the YAML as an artifact.

        torchtune saves the YAML under ``config.output_dir``; without one it fails on
        ``None.parent``. Here the YAML goes to ``output_dir``, else ``log_dir``, else is skipped.
        """
        if not self._mlflow.active_run():
            return
        resolved = OmegaConf.to_container(config, resolve=True)
        self._mlflow.log_params(flatten_dict(resolved), run_id=self._run_id)
        folder = config.get("output_dir") or self.log_dir
        if folder is None:
            return
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        yaml_path = folder / "torchtune_config.yaml"
        OmegaConf.save(config, yaml_path)
        self._mlflow.log_artifact(str(yaml_path), run_id=self._run_id)

    def __del__(self) -> None:
        # torchtune's __del__ ends the run; at interpreter exit MLflow may already be torn down.
        try:
            super().__del__()
        except Exception:
            pass
