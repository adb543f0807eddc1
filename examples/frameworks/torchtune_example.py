"""torchtune's metric logging into Trackio with mytracker's drop-in MLFlowLogger.

In a recipe config (which may keep the `log_dir` that DiskLogger configs set)::

    metric_logger:
      _component_: mytracker.integrations.torchtune.MLFlowLogger
      log_dir: ${output_dir}/logs
      experiment_name: torchtune-example

or on the command line::

    tune run ... metric_logger._component_=mytracker.integrations.torchtune.MLFlowLogger

This script builds the logger exactly as a recipe does and logs what a recipe logs.

    python examples/frameworks/torchtune_example.py && trackio show --project torchtune-example
"""

import math
import tempfile

from omegaconf import OmegaConf
from torchtune import config

cfg = OmegaConf.create({
    "output_dir": tempfile.mkdtemp(),
    "batch_size": 4,
    "optimizer": {"_component_": "torch.optim.AdamW", "lr": 3e-4},
    "metric_logger": {
        "_component_": "mytracker.integrations.torchtune.MLFlowLogger",
        "log_dir": "${output_dir}/logs",
        "experiment_name": "torchtune-example",
    },
})
metric_logger = config.instantiate(cfg.metric_logger)  # tracking URI defaults to trackio://
metric_logger.log_config(cfg)
for step in range(1, 21):
    metric_logger.log_dict({"loss": 2.0 * math.exp(-step / 8), "lr": 3e-4}, step=step)
metric_logger.close()
