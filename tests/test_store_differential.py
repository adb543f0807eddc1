"""The same MLflow calls against MLflow's own SQLite store and against trackio://: every answer
and every error code must be the same.

Ids differ between stores, so runs and experiments are compared by the order they were made in.
MLflow's SQL store returns +/-inf metrics as +/-1.7976931348623157e308 (it cannot store
infinities); so does the Trackio store, though its Trackio rows keep the exact infinity for the
dashboard. (Infinities are still mapped to the stand-ins before comparing, which changes nothing
now.)

One difference of older MLflow: its SQL store kept a NaN metric as 0 and, before MLflow 3.17,
compared that 0 in searches (`metrics.weird = 0` found the NaN run). The Trackio store answers
as MLflow 3.17 does; on older MLflow that one answer is checked against the fixed one.
"""

import math
import re

import mlflow
from mlflow import MlflowClient
from mlflow.entities import Dataset, DatasetInput, InputTag, Metric, Param, RunTag, ViewType
from mlflow.exceptions import MlflowException

from mytracker._compat import mlflow_version

MAX = 1.7976931348623157e308
T0 = 1_700_000_000_000


def _value(v):
    if isinstance(v, float) and math.isinf(v):
        return MAX if v > 0 else -MAX
    if isinstance(v, float) and math.isnan(v):
        return "nan"
    return v


class Recorder:
    """Runs calls against one store and records normalized outcomes."""

    def __init__(self, uri):
        self.client = MlflowClient(tracking_uri=uri)
        self.runs: dict[str, int] = {}
        self.experiments: dict[str, int] = {"0": 0}
        self.models: dict[str, int] = {}  # logged model id -> creation order
        self.log: list = []
        self.generated: set[str] = set()  # generated run names differ by store

    def rid(self, i):
        return next(run_id for run_id, n in self.runs.items() if n == i)

    def eid(self, i):
        return next(e for e, n in self.experiments.items() if n == i)

    def call(self, label, fn, *args, **kwargs):
        label = re.sub("[0-9a-f]{32}", "<id>", label)
        try:
            result = fn(*args, **kwargs)
        except MlflowException as e:
            self.log.append((label, "error", e.error_code))
            return None
        self.log.append((label, self.normalize(result)))
        return result

    def normalize(self, obj):
        from mlflow.entities import Experiment, LoggedModel, Run, RunInfo
        from mlflow.store.entities.paged_list import PagedList

        if isinstance(obj, PagedList):
            return [self.normalize(x) for x in obj], obj.token is not None
        if isinstance(obj, list):
            return [self.normalize(x) for x in obj]
        if isinstance(obj, Run):
            return (
                self.normalize(obj.info),
                sorted((k, _value(v)) for k, v in obj.data.metrics.items()),
                sorted(obj.data.params.items()),
                sorted(
                    (k, self.runs.get(v, "<generated>" if v in self.generated else v)
                     if k in ("mlflow.parentRunId", "mlflow.runName") else v)
                    for k, v in obj.data.tags.items()
                ),
                [
                    (d.dataset.name, d.dataset.digest, d.dataset.source_type, d.dataset.source,
                     d.dataset.schema, d.dataset.profile, [(t.key, t.value) for t in d.tags])
                    for d in obj.inputs.dataset_inputs
                ],
            )
        if isinstance(obj, RunInfo):
            return (
                self.runs.get(obj.run_id, "?"), self.experiments.get(obj.experiment_id, "?"),
                "<generated>" if obj.run_name in self.generated else obj.run_name, obj.status, obj.start_time, obj.end_time, obj.lifecycle_stage,
                obj.user_id,
            )
        if isinstance(obj, Experiment):
            return (
                self.experiments.get(obj.experiment_id, "?"), obj.name, obj.lifecycle_stage,
                sorted(obj.tags.items()),
            )
        if isinstance(obj, Metric):
            return (obj.key, _value(obj.value), obj.timestamp, obj.step)
        if isinstance(obj, LoggedModel):
            return (
                self.models.get(obj.model_id, "?"), self.experiments.get(obj.experiment_id, "?"),
                obj.name, obj.artifact_location.endswith(f"/models/{obj.model_id}/artifacts"),
                obj.status, obj.model_type, self.runs.get(obj.source_run_id, obj.source_run_id),
                obj.status_message, sorted(obj.tags.items()), sorted(obj.params.items()),
                sorted(
                    (m.key, _value(m.value), m.timestamp, m.step, self.runs.get(m.run_id),
                     m.dataset_name, m.dataset_digest, self.models.get(m.model_id))
                    for m in obj.metrics or []
                ),
            )
        return obj


def scenario(uri):
    r = Recorder(uri)
    c = r.client

    for name in ["alpha", "beta", "gamma"]:
        eid = r.call(f"create {name}", c.create_experiment, name, tags={"team": name[0]})
        r.experiments[eid] = len(r.experiments)
    r.call("duplicate experiment", c.create_experiment, "alpha")
    r.call("bad name", c.create_experiment, "")
    r.call("get by name", c.get_experiment_by_name, "beta")
    r.call("get missing by name", c.get_experiment_by_name, "nope")
    r.call("get unknown id", c.get_experiment, "987654")
    r.call("get bad id", c.get_experiment, "abc")
    for none in (None, ""):  # the Default experiment, as MLflow's SQL store reads it
        r.call(f"get {none!r}", c.get_experiment, none)
        r.call(f"rename {none!r}", c.rename_experiment, none, "Default renamed")
        r.call("rename back", c.rename_experiment, "0", "Default")
    r.call("set exp tag", c.set_experiment_tag, r.eid(1), "k", "v")
    r.call("delete exp tag", c.delete_experiment_tag, r.eid(1), "k")
    r.call("delete missing exp tag", c.delete_experiment_tag, r.eid(1), "k")
    r.call("rename", c.rename_experiment, r.eid(3), "gamma2")
    r.call("get renamed", c.get_experiment_by_name, "gamma2")
    r.call("old name gone", c.get_experiment_by_name, "gamma")

    # Runs with explicit times, so both stores see identical inputs.
    original_normalize = r.normalize

    def remember_generated(obj):
        from mlflow.entities import Run

        if isinstance(obj, Run) and re.fullmatch(r"[a-z]+-[a-z]+-\d+", obj.info.run_name):
            r.generated.add(obj.info.run_name)
        return original_normalize(obj)

    r.normalize = remember_generated
    for i in range(12):
        exp = r.eid(1 + i % 2)
        tags = {"kind": "odd" if i % 2 else "even", "i": str(i)}
        if i >= 10:
            tags["mlflow.parentRunId"] = r.rid(0)
        run = r.call(
            f"create run {i}", c.create_run, exp, start_time=T0 + i * 1000, tags=tags,  # unique: ties would fall to random ids
            run_name=f"run-{i:02d}" if i != 7 else None,
        )
        r.runs[run.info.run_id] = i
        # The generated name differs by store: pin it for comparison.
        if i == 7:
            r.call("rename generated", c.update_run, run.info.run_id, name="run-07")
    for i, run_id in [(i, r.rid(i)) for i in range(12)]:
        metrics = [
            Metric("loss", 1.0 / (i + 1) + s / 100, T0 + s, s) for s in range(5)
        ] + [Metric("acc", float(i) / 10, T0 + 10, 0)]
        if i == 3:
            metrics += [Metric("weird", math.nan, T0, 0), Metric("big", math.inf, T0, 0),
                        Metric("small", -math.inf, T0, 0)]
        if i == 4:
            metrics += [Metric("acc", math.nan, T0 + 20, 1)]
        params = [Param("lr", str(0.1 * (i % 3))), Param("opt", "adam" if i % 2 else "sgd")]
        r.call(f"log_batch {i}", c.log_batch, run_id, metrics=metrics, params=params,
               tags=[RunTag("t", f"v{i % 4}")])
    run0 = r.rid(0)
    r.call("relog same param", c.log_param, run0, "lr", "0.0")
    r.call("relog other param", c.log_param, run0, "lr", "9")
    r.call("duplicate point", c.log_batch, run0, metrics=[Metric("loss", 1.0, T0, 0)] * 2)
    r.call("same step new ts", c.log_metric, run0, "loss", 0.5, timestamp=T0 + 1, step=0)
    r.call("history", c.get_metric_history, run0, "loss")
    ties = [Metric("tie", v, T0 + (i // 4), i % 2) for i, v in enumerate([3.0, 1.0, math.nan, 2.0, 5.0, -1.0, 0.0, 4.0, 9.0])]
    r.call("ties", c.log_batch, run0, metrics=ties)
    store = c._tracking_client.store
    for size in (1, 2, 3, 100):
        pages, token = [], None
        while True:
            page = store.get_metric_history(run0, "tie", max_results=size, page_token=token)
            pages.append([r.normalize(m) for m in page])
            token = page.token
            if not token:
                break
        r.log.append((f"history pages of {size}", [m for p in pages for m in p]))
    r.call("history nan", c.get_metric_history, r.rid(3), "weird")
    r.call("history inf", c.get_metric_history, r.rid(3), "big")
    r.call("history missing key", c.get_metric_history, run0, "nope")
    r.call("history unknown run", c.get_metric_history, "0" * 32, "loss")
    r.call("bad metric name", c.log_metric, run0, "bad//name", 1.0)
    r.call("bad metric value", c.log_batch, run0, metrics=[Metric("x", "one", T0, 0)])
    r.call("bad tag key", c.set_tag, run0, "../x", "v")
    r.call("long param", c.log_param, run0, "p" * 300, "v")
    r.call("duplicate param keys", c.log_batch, run0, params=[Param("d", "1"), Param("d", "2")])
    r.call("too many metrics", c.log_batch, run0, metrics=[Metric("m", 1.0, T0, s) for s in range(1001)])
    r.call("unknown run", c.get_run, "f" * 32)
    r.call("set tag", c.set_tag, r.rid(1), "extra", "yes")
    r.call("delete tag", c.delete_tag, r.rid(1), "extra")
    r.call("delete missing tag", c.delete_tag, r.rid(1), "extra")
    r.call("rename via tag", c.set_tag, r.rid(2), "mlflow.runName", "renamed")
    r.call("terminate", c.set_terminated, r.rid(5), "FAILED", end_time=T0 + 99)
    r.call("update name only", c.update_run, r.rid(6), name="six")
    r.call("delete run", c.delete_run, r.rid(8))
    r.call("log to deleted", c.log_metric, r.rid(8), "x", 1.0)
    r.call("get deleted", c.get_run, r.rid(8))
    r.call("delete run 9", c.delete_run, r.rid(9))
    r.call("restore run 9", c.restore_run, r.rid(9))

    dataset = Dataset("train", "abc123", "code", '{"a": 1}', '{"s": 1}', '{"p": 2}')
    r.call("log inputs", c.log_inputs, r.rid(0), [
        DatasetInput(dataset, [InputTag("mlflow.data.context", "training")]),
        DatasetInput(dataset, [InputTag("mlflow.data.context", "training")]),
    ])
    r.call("log inputs eval", c.log_inputs, r.rid(2), [
        DatasetInput(Dataset("eval", "def456", "code", "{}"), [InputTag("mlflow.data.context", "eval")])
    ])
    for i in range(12):
        r.call(f"get run {i}", c.get_run, r.rid(i))

    exps = [r.eid(1), r.eid(2)]
    filters = [
        "", "metrics.loss < 0.5", "metrics.acc >= 0.3", "metrics.acc != 0.4", "metrics.weird = 0",
        "metrics.weird != 1", "params.lr = '0.1'", "params.opt != 'adam'", "params.lr LIKE '0.%'",
        "params.opt ILIKE 'ADA%'", "params.opt LIKE 'ADA%'", "tags.kind = 'odd'", "tags.t IS NULL",
        "tags.t IS NOT NULL", "params.missing IS NULL", "attributes.status = 'FAILED'",
        "attributes.run_name = 'six'", "attributes.run_name LIKE 'run-0%'",
        "run_name ILIKE 'RUN-1%'", "attributes.start_time > 1700000002000",
        "attributes.end_time < 1700000000100", "created >= 1700000001000",
        f"attributes.run_id IN ('{r.rid(1)}', '{r.rid(2)}')",
        f"attributes.run_id NOT IN ('{r.rid(1)}')", "dataset.name = 'train'",
        "dataset.digest IN ('def456')", "dataset.context = 'eval'",
        "metrics.loss < 0.9 AND params.opt = 'adam' AND tags.kind = 'odd'",
        "tags.`mlflow.parentRunId` IS NOT NULL", "attribute.lifecycle_stage = 'active'",
    ]
    orders = [
        [], ["metrics.loss"], ["metrics.acc DESC"], ["params.lr", "metrics.loss DESC"],
        ["tags.t DESC"], ["attributes.start_time"], ["attributes.run_name DESC"],
        ["metrics.weird"], ["metrics.weird DESC"], ["attributes.end_time"],
        ["params.missing", "attribute.run_name"], ["attributes.status DESC", "attribute.start_time"],
    ]
    for f in filters:
        r.call(f"search {f!r}", c.search_runs, exps, f, ViewType.ALL)
    for o in orders:
        r.call(f"order {o}", c.search_runs, exps, "", ViewType.ACTIVE_ONLY, order_by=o)
    for view in (ViewType.ACTIVE_ONLY, ViewType.DELETED_ONLY, ViewType.ALL):
        r.call(f"view {view}", c.search_runs, exps, "", view)
    token, pages = None, []
    while True:
        page = c.search_runs(exps, "", ViewType.ALL, max_results=5, page_token=token,
                             order_by=["metrics.loss"])
        pages.append([r.runs[x.info.run_id] for x in page])
        token = page.token
        if not token:
            break
    r.log.append(("paged", pages))
    for bad in ["metrics.loss <", "params.x = 1", "foo.bar = 'x'", "metrics.loss = 'a'",
                "tags.x = 'a' OR tags.y = 'b'", "params.x = 'a'; DROP TABLE mlflow_runs"]:
        r.call(f"bad filter {bad!r}", c.search_runs, exps, bad)
    r.call("bad order", c.search_runs, exps, "", order_by=["metrics.loss UP"])
    r.call("bad max_results", c.search_runs, exps, "", max_results=0)

    r.call("delete exp", c.delete_experiment, r.eid(2))
    r.call("create run in deleted exp", c.create_run, r.eid(2))
    r.call("rename deleted exp", c.rename_experiment, r.eid(2), "zzz")
    r.call("runs of deleted exp", c.search_runs, [r.eid(2)], "", ViewType.ALL)
    for view in (ViewType.ACTIVE_ONLY, ViewType.DELETED_ONLY, ViewType.ALL):
        r.call(f"exp view {view}", c.search_experiments, view)
    r.call("restore exp", c.restore_experiment, r.eid(2))
    r.call("restore active exp", c.restore_experiment, r.eid(2))
    r.call("runs of restored exp", c.search_runs, [r.eid(2)], "", ViewType.ALL)
    for f, o in [
        ("name = 'alpha'", None), ("name LIKE '%a%'", ["name"]), ("tags.team = 'b'", None),
        ("name ILIKE 'ALP%'", None), (None, ["name DESC"]), (None, ["experiment_id"]),
        # Filters the directory index answers in SQL, alone and with what it leaves to MLflow:
        ("name != 'alpha'", ["name"]), ("name LIKE 'ALP%'", None), ("name LIKE 'a_pha'", None),
        ("name ILIKE '%MM%'", ["name DESC"]), ("tags.team != 'b'", ["name"]),
        ("tags.team LIKE 'g%'", None), ("tags.team ILIKE 'A'", None),
        ("tags.team IS NULL", ["name"]), ("tags.team IS NOT NULL", ["last_update_time"]),
        ("creation_time > 0 AND name LIKE '%a'", ["creation_time DESC"]),
        ("last_update_time < 0", None), ("creation_time >= 0 AND tags.nope = 'x'", None),
        ("name LIKE '%a%' AND attributes.experiment_id != '0'", ["experiment_id DESC"]),
        ("name > 'a'", None), ("creation_time > 'soon'", None), ("tags.team > 'a'", None),
    ]:
        r.call(f"search exps {f} {o}", c.search_experiments, ViewType.ALL, filter_string=f,
               order_by=o)
    pages, token = [], None
    while True:
        page = c.search_experiments(ViewType.ALL, max_results=2, page_token=token,
                                    order_by=["name"])
        pages.append([e.name for e in page])
        token = page.token
        if not token:
            break
    r.log.append(("paged experiments", pages))
    pages, token = [], None
    while True:  # a filtered search, paged, in the default order
        page = c.search_experiments(ViewType.ALL, max_results=1, page_token=token,
                                    filter_string="name LIKE '%a%' AND tags.team != 'x'")
        pages.append([e.name for e in page])
        token = page.token
        if not token:
            break
    r.log.append(("paged filtered experiments", pages))
    return r.log


def test_trackio_store_answers_like_mlflow_sqlite(tmp_path):
    expected = scenario(f"sqlite:///{tmp_path}/mlflow.db")
    actual = scenario(f"trackio://{tmp_path}/trackio")
    assert len(actual) == len(expected)
    for want, got in zip(expected, actual):
        if want[0] == "search 'metrics.weird = 0'" and mlflow_version() < (3, 17):
            assert [run[0][2] for run in want[1][0]] == ["run-03"]  # the NaN run, matched as 0
            assert got == (want[0], ([], False)), "NaN is not 0"
            continue
        assert got == want, f"differs at {want[0]!r}"


def test_fluent_api_against_both_stores(tmp_path):
    """The fluent API (what autologging uses) gives the same runs on both stores."""
    outcomes = []
    for uri in (f"sqlite:///{tmp_path}/mlflow.db", f"trackio://{tmp_path}/trackio"):
        mlflow.set_tracking_uri(uri)
        try:
            mlflow.set_experiment("fluent")
            mlflow.set_experiment("fluent")  # the second call must find the first
            with mlflow.start_run(run_name="parent") as parent:
                mlflow.log_params({"a": 1, "b": "two"})
                mlflow.log_metrics({"m1": 0.5, "m2": 2.0}, step=3)
                with mlflow.start_run(run_name="child", nested=True):
                    mlflow.log_metric("c", 1.0)
            run = mlflow.get_run(parent.info.run_id)
            children = mlflow.search_runs(
                filter_string=f"tags.mlflow.parentRunId = '{parent.info.run_id}'",
                output_format="list",
            )
            outcomes.append((
                run.info.status, run.info.run_name, run.data.params, run.data.metrics,
                [(c.info.run_name, c.info.status, c.data.metrics) for c in children],
            ))
        finally:
            mlflow.set_tracking_uri(None)
    assert outcomes[0] == outcomes[1]
    assert outcomes[1][0] == "FINISHED"


def order_scenario(uri):
    """The order a run lists its metrics in: MLflow's SQL store lists them as their keys were
    first logged (batch order within a batch), and so does the MLflow UI."""
    c = MlflowClient(tracking_uri=uri)
    experiment_id = c.create_experiment("order")
    answers = []
    for name in ("a", "b"):
        run_id = c.create_run(experiment_id, run_name=name).info.run_id
        c.log_metric(run_id, "zeta", 1.0, step=0)
        c.log_batch(run_id, metrics=[Metric("mid", 1.0, T0, 0), Metric("Beta", 1.0, T0, 0),
                                     Metric("mid", 2.0, T0, 1), Metric("alpha", 3.0, T0 + 1, 0)])
        c.log_metric(run_id, "zeta", 0.5, step=1)  # an update keeps the key's place
        c.log_batch(run_id, metrics=[Metric(f"k{i}", float(i), T0, i) for i in (3, 1, 2)])
        c.log_metric(run_id, "aaa" if name == "a" else "zzz", 1.0)
        answers.append(("get_run", list(c.get_run(run_id).data.metrics)))
    for run in c.search_runs([experiment_id], order_by=["attributes.run_name"]):
        answers.append(("search_runs", list(run.data.metrics)))
    return answers


def test_metrics_listed_in_the_order_mlflows_sqlite_store_lists_them(tmp_path):
    expected = order_scenario(f"sqlite:///{tmp_path}/mlflow.db")
    assert expected[0][1][:4] == ["zeta", "mid", "Beta", "alpha"]  # not by name: by first logged
    assert order_scenario(f"trackio://{tmp_path}/trackio") == expected
