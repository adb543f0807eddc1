"""One client of the server load test: what a training node does, through MLflow's REST client.

    python tests/load_client.py http://127.0.0.1:5000 EXPERIMENT CLIENT RUNS STEPS

Runs RUNS runs named ``client<CLIENT>-run<R>`` in EXPERIMENT, each with params, tags, the
metrics in ``METRIC_KEYS`` at steps 0..STEPS-1 (sent with log_batch, 1000 points per call, the
REST limit) and two artifacts. Values are a function of (client, run, key, step) so a reader can
check every point; prints one JSON line per run with its id.
Used by tests/test_server.py and benchmarks/bench_server.py.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import time

from mlflow import MlflowClient
from mlflow.entities import Metric, Param, RunTag

METRIC_KEYS = ("train/loss", "train/accuracy", "eval/loss")
PARAMS_PER_RUN = 12
BATCH = 1000


def metric_value(client: int, run: int, key_index: int, step: int) -> float:
    return client * 1000.0 + run * 100.0 + key_index * 10.0 + step / 1024.0


def run_name(client: int, run: int) -> str:
    return f"client{client}-run{run}"


def main(tracking_uri: str, experiment_name: str, client_index: int, runs: int, steps: int):
    client = MlflowClient(tracking_uri)
    experiment = client.get_experiment_by_name(experiment_name)
    experiment_id = experiment.experiment_id if experiment else None
    if experiment_id is None:
        try:
            experiment_id = client.create_experiment(experiment_name)
        except Exception:  # another client created it first
            experiment_id = client.get_experiment_by_name(experiment_name).experiment_id

    for run_index in range(runs):
        run = client.create_run(
            experiment_id, run_name=run_name(client_index, run_index),
            tags={"client": str(client_index)},
        )
        run_id = run.info.run_id
        client.log_batch(
            run_id,
            params=[Param(f"param_{i}", f"c{client_index}r{run_index}v{i}")
                    for i in range(PARAMS_PER_RUN)],
            tags=[RunTag("stage", "load-test")],
        )
        start_ms = int(time.time() * 1000)
        points = [
            Metric(key, metric_value(client_index, run_index, key_index, step),
                   start_ms + step, step)
            for step in range(steps)
            for key_index, key in enumerate(METRIC_KEYS)
        ]
        for offset in range(0, len(points), BATCH):
            client.log_batch(run_id, metrics=points[offset:offset + BATCH])
        with tempfile.TemporaryDirectory() as tmp:
            notes = os.path.join(tmp, "notes.txt")
            with open(notes, "w") as f:
                f.write(f"run {run_name(client_index, run_index)}\n")
            client.log_artifact(run_id, notes)
            summary = os.path.join(tmp, "summary.json")
            with open(summary, "w") as f:
                json.dump({"client": client_index, "run": run_index, "steps": steps}, f)
            client.log_artifact(run_id, summary, artifact_path="eval")
        client.set_terminated(run_id)
        print(json.dumps({"run_id": run_id, "client": client_index, "run": run_index}),
              flush=True)


if __name__ == "__main__":
    uri, name, index, n_runs, n_steps = sys.argv[1:6]
    main(uri, name, int(index), int(n_runs), int(n_steps))
