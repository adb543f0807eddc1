"""The Vertex-AI-style manual API: log a training loop by hand into Trackio.

    python examples/manual_api.py
    mytracker show --project manual-api      # or: trackio show --project manual-api
"""

import math
import sys
import uuid
from pathlib import Path

import mytracker

mytracker.init(experiment="manual-api")
run_name = f"sgd-{uuid.uuid4().hex[:6]}"  # run names are unique within an experiment

with mytracker.start_run(run_name):  # ends the run (FAILED on an exception) when the block does
    mytracker.log_params({"learning_rate": 0.1, "epochs": 20, "optimizer": "sgd"})
    for epoch in range(20):
        loss = math.exp(-0.2 * epoch)
        mytracker.log_time_series_metrics({"loss": loss, "accuracy": 1 - loss / 2}, step=epoch)
    mytracker.log_metrics({"final_loss": loss})  # a summary value

# Reopen the same run later, e.g. from another process, and keep logging.
mytracker.start_run(run_name, resume=True)
mytracker.log_metrics({"test_accuracy": 0.91})
mytracker.end_run(state="COMPLETE")

print(mytracker.get_experiment_df().drop(columns=["experiment_name"]).to_string())
mytracker_command = Path(sys.executable).parent / "mytracker"  # works without activating the venv
print(f"\nOpen the dashboard with:  {mytracker_command} show --project manual-api")
