"""Random sequences of store operations give identical observable results, errors included, on
MLflow's own SQLite store and on trackio://."""

import math
import random
import shutil
import time

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from mlflow.entities import Metric, Param, RunTag, ViewType
from test_store_differential import T0, Recorder

KEYS = ["loss", "acc", "a/b", "x y", "step"]
values = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True, width=64),
    st.integers(min_value=-(2**31), max_value=2**31),
    st.sampled_from([0.0, -0.0, 1.0, math.nan, math.inf]),
)
metrics = st.builds(
    Metric,
    key=st.sampled_from(KEYS),
    value=values,
    timestamp=st.integers(min_value=0, max_value=4_000_000_000_000),
    step=st.integers(min_value=-5, max_value=5),
)
params = st.builds(Param, key=st.sampled_from(["lr", "opt", "seed"]), value=st.sampled_from(["1", "2", "adam"]))
tags = st.builds(RunTag, key=st.sampled_from(["t", "u", "mlflow.runName"]), value=st.sampled_from(["a", "b", "c"]))
run_ref = st.integers(min_value=0, max_value=5)
FILTERS = [
    "", "metrics.loss > 0", "metrics.acc <= 1", "metrics.loss != 0", "params.lr = '1'",
    "params.opt LIKE 'a%'", "tags.t = 'a'", "tags.u IS NULL", "attributes.status = 'FINISHED'",
    "attributes.run_name LIKE 'r%'", "metrics.`x y` >= -1",
]
ORDERS = [[], ["metrics.loss"], ["metrics.acc DESC"], ["params.lr DESC"], ["tags.t"], ["attributes.run_name"]]

# Experiment names from all of Unicode (surrogates cannot be stored as text), plus a few that
# collide, reduce to the same file name, or are longer than a file name in bytes.
experiment_names = st.one_of(
    st.sampled_from(["prop", "x", "X", "x ", "a/../b", "実" * 80, "験" * 120, "\U0001d400" * 70]),
    st.text(st.characters(blacklist_categories=["Cs"]), max_size=90),
)
experiment_ref = st.integers(min_value=0, max_value=4)

# MLflow 3's logged models: made in the experiment (from a run or not), tagged, finalized,
# deleted, given metrics through a run, and searched.
model_ref = st.integers(min_value=0, max_value=3)
model_names = st.sampled_from(["net", "net", "tree", "a/b", None])
model_tags = st.dictionaries(st.sampled_from(["t", "u"]), st.sampled_from(["a", "b"]), max_size=2)
model_params = st.dictionaries(st.sampled_from(["lr", "seed"]), st.sampled_from(["1", "2"]), max_size=2)
MODEL_FILTERS = [
    "", "name = 'net'", "name LIKE 'n%'", "params.lr = '1'", "tags.t = 'a'", "metrics.loss > 0",
    "metrics.acc <= 1", "status = 'READY'",
]
MODEL_ORDERS = [
    None, [{"field_name": "name"}], [{"field_name": "metrics.loss", "ascending": False}],
    [{"field_name": "metrics.acc"}], [{"field_name": "name", "ascending": False}],
]
model_operation = st.one_of(
    st.tuples(st.just("create_model"), model_names, st.one_of(st.none(), run_ref), model_tags,
              model_params),
    st.tuples(st.just("finalize_model"), model_ref, st.sampled_from(["READY", "FAILED"])),
    st.tuples(st.just("set_model_tags"), model_ref, model_tags),
    st.tuples(st.just("delete_model_tag"), model_ref, st.sampled_from(["t", "u"])),
    st.tuples(st.just("delete_model"), model_ref),
    st.tuples(st.just("get_model"), model_ref),
    st.tuples(st.just("model_metric"), run_ref, model_ref, metrics),
    st.tuples(st.just("search_models"), st.sampled_from(MODEL_FILTERS),
              st.sampled_from(MODEL_ORDERS), st.integers(min_value=1, max_value=3)),
)

operation = st.one_of(
    st.tuples(st.just("create_run"), st.sampled_from(["r1", "r2", "other"])),
    st.tuples(st.just("create_experiment"), experiment_names),
    st.tuples(st.just("rename_experiment"), experiment_ref, experiment_names),
    st.tuples(st.just("delete_experiment"), experiment_ref),
    st.tuples(st.just("restore_experiment"), experiment_ref),
    st.tuples(st.just("get_experiment_by_name"), experiment_names),
    st.tuples(st.just("log_batch"), run_ref, st.lists(metrics, max_size=8),
              st.lists(params, max_size=2, unique_by=lambda p: p.key), st.lists(tags, max_size=2)),
    st.tuples(st.just("set_tag"), run_ref, tags),
    st.tuples(st.just("delete_tag"), run_ref, st.sampled_from(["t", "u"])),
    st.tuples(st.just("terminate"), run_ref, st.sampled_from(["FINISHED", "FAILED", "KILLED"])),
    st.tuples(st.just("delete_run"), run_ref),
    st.tuples(st.just("restore_run"), run_ref),
    st.tuples(st.just("get_run"), run_ref),
    st.tuples(st.just("history"), run_ref, st.sampled_from(KEYS)),
    st.tuples(st.just("search"), st.sampled_from(FILTERS), st.sampled_from(ORDERS),
              st.sampled_from([ViewType.ACTIVE_ONLY, ViewType.ALL])),
    model_operation,
)


def replay(uri: str, operations: list) -> list:
    r = Recorder(uri)
    c = r.client
    experiment_id = c.create_experiment("prop")
    r.experiments[experiment_id] = 1
    made = 0
    for op in operations:
        name, *args = op
        if name == "create_run":
            run = r.call(name, c.create_run, experiment_id, start_time=T0 + made, run_name=args[0])
            if run is None:  # the experiment was deleted
                continue
            r.runs[run.info.run_id] = made
            made += 1
            continue
        if name == "search":
            filter_string, order_by, view = args
            r.call(name, c.search_runs, [experiment_id], filter_string, view, order_by=order_by)
            continue
        if name == "create_experiment":
            new_id = r.call(name, c.create_experiment, args[0])
            if new_id is not None:
                r.experiments[new_id] = len(r.experiments)
            continue
        if name == "get_experiment_by_name":
            r.call(name, c.get_experiment_by_name, args[0])
            continue
        if name in MODEL_CALLS:
            MODEL_CALLS[name](r, experiment_id, made, *args)
            continue
        if name.endswith("_experiment"):
            if args[0] < len(r.experiments):
                method = getattr(c, name)
                r.call(name, method, r.eid(args[0]), *args[1:])
            continue
        if args[0] >= made:
            continue  # refers to a run not made yet
        run_id = r.rid(args[0])
        if name == "log_batch":
            r.call(name, c.log_batch, run_id, metrics=args[1], params=args[2], tags=args[3])
        elif name == "set_tag":
            r.call(name, c.set_tag, run_id, args[1].key, args[1].value)
        elif name == "delete_tag":
            r.call(name, c.delete_tag, run_id, args[1])
        elif name == "terminate":
            r.call(name, c.set_terminated, run_id, args[1], end_time=T0 + 10_000)
        elif name == "delete_run":
            r.call(name, c.delete_run, run_id)
        elif name == "restore_run":
            r.call(name, c.restore_run, run_id)
        elif name == "get_run":
            r.call(name, c.get_run, run_id)
        elif name == "history":
            r.call(name, c.get_metric_history, run_id, args[1])
    for i in range(made):
        r.call("final get_run", c.get_run, r.rid(i))
    every = c.search_experiments(view_type=ViewType.ALL, max_results=1000)
    r.log.append(("final experiments", sorted(r.normalize(e) for e in every)))
    for i in range(len(r.experiments)):
        r.call("final get_experiment", c.get_experiment, r.eid(i))
    return r.log


def create_model(r, experiment_id, made, name, run, tags, params):
    time.sleep(0.003)  # distinct creation times: ties are ordered by the (random) model id
    random.seed(len(r.models))  # a generated name: both stores draw the same one
    source_run_id = r.rid(run) if run is not None and run < made else None
    model = r.call("create_model", r.client.create_logged_model, experiment_id, name=name,
                   source_run_id=source_run_id, tags=tags, params=params)
    if model is not None:
        r.models[model.model_id] = len(r.models)


def model_call(method: str):
    """An operation on the n-th logged model made so far (none yet: nothing to do)."""
    def call(r, experiment_id, made, model, *args):
        if model < len(r.models):
            model_id = next(m for m, n in r.models.items() if n == model)
            r.call(method, getattr(r.client, method), model_id, *args)
    return call


def model_metric(r, experiment_id, made, run, model, metric):
    if run < made and model < len(r.models):
        model_id = next(m for m, n in r.models.items() if n == model)
        linked = Metric(metric.key, metric.value, metric.timestamp, metric.step, model_id=model_id)
        r.call("model_metric", r.client.log_batch, r.rid(run), metrics=[linked])


def search_models(r, experiment_id, made, filter_string, order_by, page_size):
    token, pages = None, 0
    while pages == 0 or (token and pages < 10):
        page = r.call("search_models", r.client.search_logged_models, [experiment_id],
                      filter_string=filter_string, order_by=order_by, max_results=page_size,
                      page_token=token)
        token, pages = page.token if page is not None else None, pages + 1


MODEL_CALLS = {
    "create_model": create_model,
    "finalize_model": model_call("finalize_logged_model"),
    "set_model_tags": model_call("set_logged_model_tags"),
    "delete_model_tag": model_call("delete_logged_model_tag"),
    "delete_model": model_call("delete_logged_model"),
    "get_model": model_call("get_logged_model"),
    "model_metric": model_metric,
    "search_models": search_models,
}


@pytest.fixture(scope="module")
def sqlite_template(tmp_path_factory):
    """An initialised MLflow SQLite database to copy (creating one runs MLflow's migrations)."""
    path = tmp_path_factory.mktemp("template") / "mlflow.db"
    from mlflow import MlflowClient

    MlflowClient(f"sqlite:///{path}").search_experiments()
    return path


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(operations=st.lists(operation, min_size=1, max_size=25))
def test_random_operations_match_mlflow_sqlite(operations, sqlite_template, tmp_path_factory):
    workdir = tmp_path_factory.mktemp("case")
    shutil.copy(sqlite_template, workdir / "mlflow.db")
    # Make sure a run and a model from it exist, so most operations do something.
    operations = [("create_run", "r0"), ("create_model", "net", 0, {}, {}), *operations]
    expected = replay(f"sqlite:///{workdir}/mlflow.db", operations)
    actual = replay(f"trackio://{workdir}/trackio", operations)
    assert actual == expected
