"""Metric points <-> Trackio rows: validation, grouping into rows, deduplication, history.

An MLflow metric point (key, value, timestamp_ms, step) becomes part of a Trackio ``metrics``
row: one row per (step, timestamp), holding one value per key as JSON, which is what Trackio's
dashboard plots. ``system/`` keys go to Trackio's ``system_metrics`` table instead. MLflow's
latest value per key is kept beside them (``mlflow_latest_metrics``), in the same transaction.
"""

from __future__ import annotations

import base64
import bisect
import json
import operator
from collections.abc import Sequence
from functools import lru_cache
from itertools import islice

import orjson  # a dependency of Trackio's
from mlflow.entities import Metric
from mlflow.exceptions import MlflowException
from mlflow.protos.databricks_pb2 import INVALID_PARAMETER_VALUE
from mlflow.store.entities.paged_list import PagedList
from mlflow.utils.validation import _validate_metric

from mytracker.store import _db
from mytracker.store._db import ProjectDB
from mytracker.store._trackio import (
    SYSTEM_STEP_KEY,
    clamped,
    finite,
    iso_from_ms,
    json_numbers,
    mlflow_metric_key,
    ms_from_iso,
    number_from_json,
    quoted_key,
    trackio_metric_key,
)

SYSTEM_PREFIX = "system/"
_NAN = "nan"  # NaN's identity when deduplicating points (NaN != NaN)
_QUOTED_STEP = quoted_key(SYSTEM_STEP_KEY)

# --- validation ---------------------------------------------------------------------------------

_MAX_TIMESTAMP_MS = 253_402_300_799_999  # 9999-12-31T23:59:59.999Z, the last one ISO text holds
_MIN_STEP, _MAX_STEP = -(2**63), 2**63 - 1  # a step is a SQLite INTEGER, as in MLflow's store
_MAX_PAGE_SKIP = 2**31  # points of one (timestamp, step) a page token may skip
_VALID_KEYS: set[str] = set()  # metric names that passed MLflow's validation
_NUMBER_TYPES = {float, int}
_INT_TYPE = {int}


def check_timestamp(timestamp_ms, path: str) -> None:
    if timestamp_ms is not None and not 0 <= timestamp_ms <= _MAX_TIMESTAMP_MS:
        raise MlflowException(
            f"Invalid value {timestamp_ms} for parameter '{path}': the Trackio store keeps "
            "timestamps as ISO dates, so they must lie between 1970 and 9999 "
            f"(0 to {_MAX_TIMESTAMP_MS} ms).",
            INVALID_PARAMETER_VALUE,
        )


def check_int64(value, path: str) -> None:
    """MLflow's SQL store keeps steps and times as 64-bit integers (and fails on larger ones
    with SQLite's OverflowError); here they are refused as the bad input they are."""
    if value is not None and not _MIN_STEP <= value <= _MAX_STEP:
        raise MlflowException(
            f"Invalid value {value} for parameter '{path}': it must fit in a 64-bit integer "
            f"({_MIN_STEP} to {_MAX_STEP}).",
            INVALID_PARAMETER_VALUE,
        )


def metric_columns(metrics: Sequence[Metric]) -> tuple[list, list, list, list]:
    """(keys, values, timestamps_ms, steps) of metrics, validated as MLflow validates them. The
    whole batch is checked at once, and each distinct key's name only when first seen: this is
    the hot path of every metric logged."""
    if not metrics:
        return [], [], [], []
    try:  # MLflow's Metric keeps its fields in these attributes; reading them skips 4 calls
        keys = [m._key for m in metrics]
        values = [m._value for m in metrics]
        timestamps = [m._timestamp for m in metrics]
        steps = [m._step for m in metrics]
    except AttributeError:
        keys = [m.key for m in metrics]
        values = [m.value for m in metrics]
        timestamps = [m.timestamp for m in metrics]
        steps = [m.step for m in metrics]
    if not (
        _NUMBER_TYPES.issuperset(map(type, values))
        and _INT_TYPE.issuperset(map(type, timestamps))
        and _INT_TYPE.issuperset(map(type, steps))
        and 0 <= min(timestamps)
        and max(timestamps) <= _MAX_TIMESTAMP_MS
        and _MIN_STEP <= min(steps)
        and max(steps) <= _MAX_STEP
        and _VALID_KEYS.issuperset(keys)
    ):
        for index, (key, value, timestamp_ms, step) in enumerate(
            zip(keys, values, timestamps, steps)
        ):
            if not (
                type(value) in _NUMBER_TYPES
                and type(timestamp_ms) is int
                and 0 <= timestamp_ms <= _MAX_TIMESTAMP_MS
                and type(step) is int
                and _MIN_STEP <= step <= _MAX_STEP
                and key in _VALID_KEYS
            ):
                _validate_metric(key, value, timestamp_ms, step, path=f"metrics[{index}]")
                check_timestamp(timestamp_ms, f"metrics[{index}].timestamp")
                check_int64(step, f"metrics[{index}].step")
                if len(_VALID_KEYS) > 100_000:
                    _VALID_KEYS.clear()
                _VALID_KEYS.add(key)
        timestamps, steps = list(map(int, timestamps)), list(map(int, steps))
    return keys, list(map(float, values)), timestamps, steps


# --- keys ---------------------------------------------------------------------------------------


@lru_cache(maxsize=65536)
def _key_encoding(key: str) -> tuple[bool, str]:
    """(is a system metric, the key as quoted JSON in Trackio's row) for an MLflow metric key."""
    system, trackio_key = _split_key(key)
    return system, quoted_key(trackio_key)


def _split_key(key: str) -> tuple[bool, str]:
    """(is a system metric, the key in Trackio's JSON) of an MLflow metric key."""
    system = key.startswith(SYSTEM_PREFIX)
    return system, trackio_metric_key(key[len(SYSTEM_PREFIX):] if system else key)


# --- writing ------------------------------------------------------------------------------------


def _latest_points(points: list) -> dict[str, tuple]:
    """((step, timestamp), value) per key of the point MLflow calls latest: the largest (step,
    timestamp, value), comparing values as MLflow's SQL store does."""
    latest: dict[str, tuple] = {}
    for key, value, ts, step in points:
        rank = (step, ts)
        current = latest.get(key)
        if current is None or rank > current[0] or (
            rank == current[0] and clamped(value) > clamped(current[1])
        ):
            latest[key] = (rank, value)
    return latest


def _group_rows(points: list, quoted: dict, system_keys: set, open_rows: dict) -> tuple:
    """Trackio rows for points: those of one (step, timestamp) share a row, one value per key
    (a second value for a key starts another row; the same value again is the same point).
    `open_rows` holds stored rows, (row id, values) by (system, step, timestamp), that may take
    more keys. Returns (points written, new metric rows, new system rows, updated rows by
    system), new rows as one flat list (timestamp_ms, step, JSON, ...) and updates as (row id,
    JSON)."""
    groups: dict[tuple, list[dict]] = {}
    stored_rows: dict[int, tuple[int, int]] = {}  # id(row) -> (row id, size when read)
    written = 0
    for key, value, ts, step in points:
        group_key = (key in system_keys, step, ts)
        key_text = quoted[key]
        rows = groups.get(group_key)
        if rows is None:
            rows = groups[group_key] = []
            for row_id, values in open_rows.get(group_key, ()) if open_rows else ():
                row = dict(values)
                stored_rows[id(row)] = (row_id, len(row))
                rows.append(row)
            if not rows:
                rows.append({key_text: value})
                written += 1
                continue
        # Rows holding the key come first; a row without it takes the point.
        for row in rows:
            if key_text not in row:
                row[key_text] = value
                break
            old = row[key_text]
            if old == value or (old != old and value != value):
                written -= 1  # the same point twice in one batch
                break
        else:
            rows.append({key_text: value})
        written += 1

    pending = []  # (system, step, ts, values, stored row id or None): the rows to write
    for (system, step, ts), group in groups.items():
        for row in group:
            stored = stored_rows.get(id(row))
            if stored is None or len(row) != stored[1]:  # a stored row that took nothing stays
                pending.append((system, step, ts, row, None if stored is None else stored[0]))
    # All values formatted at once; a system row's stored step is written from `step`.
    texts = iter(json_numbers([v for *_, row, _ in pending for v in row.values()]))
    metric_rows, system_rows, updates = [], [], {False: [], True: []}
    for system, step, ts, row, row_id in pending:
        fields = [
            k + ":" + text
            for k, text in zip(row, islice(texts, len(row)))
            if not system or k != _QUOTED_STEP
        ]
        if system:
            fields.append(f"{_QUOTED_STEP}:{step}")
        text = "{" + ",".join(fields) + "}"
        if row_id is not None:
            updates[system].append((row_id, text))
        else:
            (system_rows if system else metric_rows).extend((ts, step, text))
    return written, metric_rows, system_rows, updates


def _stored_points(conn, run_id: str, systems: set[bool], pairs: set[tuple[int, int]]):
    """The points already stored at the batch's (step, timestamp) pairs, as a (key, step, ts,
    value) set, and the rows there that only hold numbers (they may take more keys of their step
    and timestamp) as (row id, values) by (system, step, timestamp). A point that joined a row
    stamped earlier counts at its own time, not at its row's."""
    stored = set()
    open_rows: dict[tuple, list[tuple[int, dict]]] = {}
    for system in systems:
        prefix = SYSTEM_PREFIX if system else ""
        rows = _db.stored_points(conn, system, run_id, pairs)
        joined = _db.joined_keys(conn, [row.row_id for row in rows]) if rows and not system else ()
        for row_id, step, ts, text in rows:
            data = orjson.loads(text)
            numeric = True
            for trackio_key, raw in data.items():
                value = number_from_json(raw)
                if system and trackio_key == SYSTEM_STEP_KEY:
                    continue
                if value is None:
                    numeric = False
                    continue
                if joined and (row_id, quoted_key(trackio_key)) in joined:
                    continue
                key = prefix + mlflow_metric_key(trackio_key)
                stored.add((key, step, ts, value if value == value else _NAN))
            if numeric:
                row_values = {quoted_key(k): number_from_json(v) for k, v in data.items()}
                open_rows.setdefault((system, step, ts), []).append((row_id, row_values))
        if not system:
            for _, step, ts, text in _db.joined_points(conn, run_id, pairs):
                ((trackio_key, raw),) = orjson.loads(text).items()
                value = number_from_json(raw)
                stored.add((mlflow_metric_key(trackio_key), step, ts, value if value == value else _NAN))
    return stored, open_rows


def log_metrics(conn, run_id: str, run_name: str, columns: tuple) -> int:
    """Write validated metric points, given as columns (keys, values, timestamps_ms, steps):
    Trackio rows for the dashboard plus MLflow's latest value per key, in the caller's
    transaction. Returns how many points were new."""
    keys, values, timestamps, steps = columns
    encodings = {key: _key_encoding(key) for key in set(keys)}
    logged = _db.first_logged(keys)  # keys new to the run list in the batch's order
    # Points already stored are skipped: one point per (key, step, timestamp, value), as
    # MLflow's SQL store keeps them (so a retried batch changes nothing). Stored rows of the
    # batch's (step, timestamp) pairs that only hold metrics can take more keys: a step whose
    # keys arrive in two batches stays one Trackio row. Only those pairs are looked up.
    # Without metrics rows at the batch's steps (the common case: new steps) no metric point of
    # the batch is stored and none can join a row: one range check settles it.
    step_rows = _db.has_metric_rows(conn, run_id, min(steps), max(steps))
    step, ts = steps[0], timestamps[0]
    if (
        not step_rows
        and steps.count(step) == len(keys) == len(encodings) == timestamps.count(ts)
        and not any(system for system, _ in encodings.values())
    ):
        # A training loop's step: distinct keys at one new (step, timestamp), nothing stored
        # there to skip or join. What the general path below makes of it, without its grouping.
        texts = json_numbers(values)
        fields = [encodings[key][1] + ":" + text for key, text in zip(keys, texts)]
        _db.insert_metric_rows(conn, run_id, run_name, [ts, step, "{" + ",".join(fields) + "}"])
        _upsert_latest(
            conn, run_id, {key: ((step, ts), value) for key, value in zip(keys, values)}, logged
        )
        return len(keys)
    systems = {e[0] for e in encodings.values()}
    if not step_rows:
        systems.discard(False)
    stored, open_rows = set(), {}
    if systems:
        stored, open_rows = _stored_points(conn, run_id, systems, set(zip(steps, timestamps)))
    if stored:
        new = [
            (k, v, t, s)
            for k, v, t, s in zip(keys, values, timestamps, steps)
            if (k, s, t, v if v == v else _NAN) not in stored
        ]
        if not new:
            return 0
        keys, values, timestamps, steps = zip(*new)
    quoted = {key: encoding[1] for key, encoding in encodings.items()}
    system_keys = {key for key, encoding in encodings.items() if encoding[0]}
    taken = {(step, ts) for _, step, ts, _ in stored} | {(s, t) for _, s, t in open_rows}
    joined, rest = _join_step_rows(
        conn, run_id, run_name, (keys, values, timestamps, steps), quoted, system_keys, taken,
        step_rows, logged,
    )
    if joined:
        if not rest:
            _db.drop_placeholder(conn, run_id)
            return joined
        keys, values, timestamps, steps = zip(*rest)
    # Points in strictly increasing (step, timestamp) order (mostly decided by the steps
    # alone) each have their own rank, and a key's last point is its latest.
    in_order = all(map(operator.lt, steps, islice(steps, 1, None)))
    if not in_order:
        ranks = list(zip(steps, timestamps))
        in_order = all(map(operator.lt, ranks, islice(ranks, 1, None)))
    if not system_keys and not open_rows and (
        in_order or len(set(zip(steps, timestamps))) == len(keys)
    ):
        # One point per (step, timestamp), the shape of a one-key series: a row each, and a
        # key's latest point is the one with the largest (step, timestamp).
        written = len(keys)
        if in_order:
            last = dict(zip(keys, range(written)))
            latest = {k: ((steps[i], timestamps[i]), values[i]) for k, i in last.items()}
        else:
            ordered = sorted(zip(steps, timestamps, values, keys))
            latest = {k: ((s, t), v) for s, t, v, k in ordered}
        metric_rows = [None] * (3 * written)
        metric_rows[0::3] = timestamps
        metric_rows[1::3] = steps
        heads = {key: "{" + text + ":" for key, text in quoted.items()}
        texts = json_numbers(values)
        metric_rows[2::3] = [heads[k] + t + "}" for k, t in zip(keys, texts)]
        system_rows = []
    elif not system_keys and not open_rows and len(set(zip(keys, steps, timestamps))) == len(keys):
        # Several keys at a (step, timestamp), each once, as a training loop logs its steps:
        # a row per (step, timestamp), and a key's latest point is the one of its largest rank.
        written = len(keys)
        ranks = list(zip(steps, timestamps))
        fields_by_rank: dict[tuple, list[str]] = {}
        for key, text, rank in zip(keys, json_numbers(values), ranks):
            fields_by_rank.setdefault(rank, []).append(quoted[key] + ":" + text)
        metric_rows = []
        for (step, ts), fields in fields_by_rank.items():
            metric_rows += (ts, step, "{" + ",".join(fields) + "}")
        points = zip(keys, ranks, values)
        if not all(map(operator.le, ranks, islice(ranks, 1, None))):
            points = sorted(points, key=operator.itemgetter(1))
        latest = {key: (rank, value) for key, rank, value in points}
        system_rows = []
    else:
        points = list(zip(keys, values, timestamps, steps))
        latest = _latest_points(points)
        written, metric_rows, system_rows, updates = _group_rows(
            points, quoted, system_keys, open_rows
        )
        for system, rows in updates.items():
            if rows:
                _db.update_rows(conn, system, rows)
    if metric_rows:
        _db.insert_metric_rows(conn, run_id, run_name, metric_rows)
    if system_rows:
        _db.insert_system_rows(conn, run_id, run_name, system_rows)
    _upsert_latest(conn, run_id, latest, logged)
    if joined:  # after the rows above: the placeholder may have taken some of their points
        _db.drop_placeholder(conn, run_id)
    return written + joined


def _upsert_latest(conn, run_id: str, latest: dict[str, tuple], logged: dict[str, int]) -> None:
    _db.upsert_latest_metrics(
        conn,
        run_id,
        [
            (key, value if value == value else None, ts, step, int(value != value), logged[key])
            for key, ((step, ts), value) in latest.items()
        ],
    )


# A step's keys logged this soon after its Trackio row was stamped join that row.
JOIN_WINDOW_MS = 10_000


def _join_step_rows(
    conn, run_id: str, run_name: str, columns: tuple, quoted: dict, system_keys: set, taken: set,
    step_rows: bool, logged: dict[str, int],
) -> tuple[int, list]:
    """Write the points that join a row of their step, and the rows they join; returns how many
    points were written and the other points, as (key, value, timestamp_ms, step), for the
    caller to write.

    Trackio's dashboard counts a run's rows as its steps, as one `trackio.log` call makes one
    row. MLflow's callers often log a step's keys in several calls moments apart (scikit-learn's
    autolog logs its step-0 training metrics at three times), so the rule is: points of a step,
    taken in time order, join the latest row of that step (stored, or started by this batch)
    when that row was stamped at most JOIN_WINDOW_MS earlier, holds none of their keys, and is
    the run's last row before their time (no other row stamped in between). The
    row keeps its time; each joined point keeps its own for MLflow in `mlflow_joined_points`,
    where histories and deduplication read it. Steps with a (step, timestamp) already stored, or
    a key twice at one time, keep one row per (step, timestamp). The lookup is one index probe
    of the latest row per step of the batch.
    """
    keys, values, timestamps, steps = columns
    metric_steps = set(steps)
    if system_keys:
        metric_steps = {s for k, s in zip(keys, steps) if k not in system_keys}
    in_batch = len(metric_steps) < len(keys) and len(set(zip(steps, timestamps))) > len(
        set(steps)
    )
    if not (in_batch or step_rows) or not metric_steps:
        return 0, []
    hosts = {}
    if step_rows:
        hosts = {row.step: row for row in _db.latest_rows_at_steps(conn, run_id, metric_steps)}
    if not (in_batch or hosts):
        return 0, []
    by_step: dict[int, dict[int, list[int]]] = {}
    for i, (key, ts, step) in enumerate(zip(keys, timestamps, steps)):
        if key not in system_keys:
            by_step.setdefault(step, {}).setdefault(ts, []).append(i)
    # A point joins a row only when no other row of the run is stamped between the two (so
    # Trackio, which orders rows by time, shows every row where it was): neither a row of
    # another step of the batch, nor a stored row (looked up only when some is that recent).
    batch_times = sorted({(ts, step) for step, by_ts in by_step.items() for ts in by_ts})
    last_stored = _db.last_metric_time(conn, run_id)

    def nothing_between(step: int, row_ms: int, ts: int) -> bool:
        i = bisect.bisect_right(batch_times, (row_ms, _MAX_STEP))
        while i < len(batch_times) and batch_times[i][0] <= ts:
            if batch_times[i][1] != step:
                return False
            i += 1
        row_text = iso_from_ms(row_ms)
        return (
            last_stored is None or last_stored <= row_text
            or not _db.metric_rows_stamped(conn, run_id, row_text, iso_from_ms(ts))
        )

    rows = []  # [stored row or None, its timestamp_ms, its keys, own points, joined points]
    for step, by_ts in by_step.items():
        if any((step, ts) in taken or len({keys[i] for i in group}) < len(group)
               for ts, group in by_ts.items()):
            continue
        row = None
        if step in hosts:
            host = hosts[step]
            row = [host, host.timestamp_ms, set(map(quoted_key, orjson.loads(host.text))), [], []]
            rows.append(row)
        for ts in sorted(by_ts):
            group = by_ts[ts]
            group_keys = {quoted[keys[i]] for i in group}
            if (
                row and 0 < ts - row[1] <= JOIN_WINDOW_MS and not group_keys & row[2]
                and nothing_between(step, row[1], ts)
            ):
                row[2] |= group_keys
                row[4] += group
            else:
                row = [None, ts, group_keys, group, []]
                rows.append(row)

    done, updates, joined_points = set(), [], []
    for host, ts, _, own, joiners in rows:
        if not joiners:
            continue
        texts = list(json_numbers([values[i] for i in own + joiners]))
        fields = [quoted[keys[i]] + ":" + text for i, text in zip(own + joiners, texts)]
        step = steps[joiners[0]]
        if host is None:
            row_id = _db.insert_metric_row(
                conn, run_id, run_name, ts, step, "{" + ",".join(fields) + "}"
            )
        else:
            text = host.text.decode() if isinstance(host.text, bytes) else host.text
            text = text.rstrip()[:-1].rstrip()
            row_id = host.row_id
            updates.append((row_id, text + ("" if text == "{" else ",") + ",".join(fields) + "}"))
        joined_points += [
            (row_id, quoted[keys[i]], step, timestamps[i], "{" + quoted[keys[i]] + ":" + text + "}")
            for i, text in zip(joiners, texts[len(own):])
        ]
        done.update(own + joiners)
    if not done:
        return 0, []
    _db.update_rows(conn, False, updates)
    _db.insert_joined_points(conn, run_id, joined_points)
    points = list(zip(keys, values, timestamps, steps))
    _upsert_latest(conn, run_id, _latest_points([points[i] for i in done]), logged)
    return len(done), [point for i, point in enumerate(points) if i not in done]


# --- reading ------------------------------------------------------------------------------------


def _points(db: ProjectDB, run_id: str, trackio_key: str, system: bool, **where) -> tuple:
    """(step, timestamp_ms, value) of one key's points, and how many rows were read (rows are
    matched by text first, then checked, so the count can exceed the points)."""
    rows = db.metric_rows(run_id, quoted_key(trackio_key), system, **where)
    points = []
    for step_value, timestamp, text in rows:
        value = number_from_json(orjson.loads(text).get(trackio_key))
        if value is not None:
            points.append((step_value, ms_from_iso(timestamp), value))
    return points, len(rows)


def metric_history(db: ProjectDB, run_id: str, metric_key: str, max_results, page_token):
    """One key's points as MLflow's SQL store pages them: ordered by (timestamp, step, value).
    Pages continue after the last point returned (a keyset, not an offset), so reading a long
    history page by page reads each row once."""
    system, trackio_key = _split_key(metric_key)
    start = _decode_history_token(page_token)
    skip = start[2] if start else 0
    limit = None if max_results is None else skip + max_results + 1
    found, read = _points(db, run_id, trackio_key, system, start=start and start[:2], limit=limit)
    if limit is not None and read >= limit and found:
        # The last (timestamp, step) may be cut short: read it whole, to order it by value.
        last = (found[-1][1], found[-1][0])
        found = [p for p in found if (p[1], p[0]) != last]
        found += _points(db, run_id, trackio_key, system, only=last)[0]
    points = [(ts, step, value) for step, ts, value in found]
    # MLflow's SQL store orders by (timestamp, step, value), with NaN stored as 0.
    points.sort(key=lambda p: (p[0], p[1], clamped(p[2])))
    points = points[skip:]
    if max_results is None or len(points) <= max_results and read < (limit or 0):
        page, token = points, None
    else:
        page = points[:max_results]
        last = page[-1][:2] if page else None
        done_in_group = sum(1 for p in page if p[:2] == last)
        if start and last == start[:2]:
            done_in_group += skip
        token = _encode_history_token(*last, done_in_group) if last else None
    # Infinities stay exact in Trackio's rows; MLflow's answer is its SQL store's (largest double).
    metrics = [Metric(metric_key, finite(value), ts, step) for ts, step, value in page]
    return PagedList(metrics, token)


def _encode_history_token(timestamp_ms: int, step: int, done: int) -> str:
    raw = json.dumps({"after": [timestamp_ms, step, done]}).encode()
    return base64.urlsafe_b64encode(raw).decode()


def _decode_history_token(token: str | None) -> tuple[int, int, int] | None:
    if not token:
        return None
    try:
        timestamp_ms, step, done = json.loads(base64.urlsafe_b64decode(token))["after"]
    except Exception:
        timestamp_ms = None
    # A token comes back from the client, so it may be forged: only the integers this store
    # hands out are accepted (SQLite cannot bind numbers beyond 64 bits; a float is not a step).
    if not (
        type(timestamp_ms) is int and 0 <= timestamp_ms <= _MAX_TIMESTAMP_MS
        and type(step) is int and _MIN_STEP <= step <= _MAX_STEP
        and type(done) is int and 0 <= done <= _MAX_PAGE_SKIP
    ):
        raise MlflowException(f"Invalid page token {token!r}", INVALID_PARAMETER_VALUE)
    return timestamp_ms, step, done
