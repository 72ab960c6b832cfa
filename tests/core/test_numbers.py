"""Items 1 and 3: a number field takes what Airtable can hold, checked at the call; roll-ups never raise."""

from __future__ import annotations

import math

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import jobtrace
from jobtrace import tracking
from jobtrace.sinks import MemorySink
from jobtrace.values import MAX_NUMBER

FIXTURE_OK = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])

too_big = st.one_of(
    st.integers(min_value=MAX_NUMBER + 1),
    st.integers(max_value=-MAX_NUMBER - 1),
    st.integers(min_value=1000, max_value=20_000).map(lambda bits: 2**bits),
    st.floats(min_value=MAX_NUMBER + 2.0, allow_infinity=False),
    st.floats(max_value=-MAX_NUMBER - 2.0, allow_infinity=False),
)
holdable = st.one_of(
    st.integers(min_value=-MAX_NUMBER, max_value=MAX_NUMBER),
    st.floats(min_value=-MAX_NUMBER, max_value=MAX_NUMBER, allow_nan=False),
)


@FIXTURE_OK
@given(amount=too_big)
def test_a_number_airtable_cannot_hold_is_refused_at_every_call_and_changes_nothing(
    sink: MemorySink, amount: float
) -> None:
    sink.clear()
    with jobtrace.tracked_job("post-scoring") as job, jobtrace.client_run("acme") as client:
        client.incr(posts_processed=3)
        for call in (
            lambda: client.incr(posts_processed=amount),
            lambda: client.update(token_usage=amount),
            lambda: jobtrace.incr(posts_processed=amount),
            lambda: job.incr(token_usage=amount),
            lambda: tracking.update_job_tracking_record(job.run_id, {"tokenUsage": amount}),
            lambda: tracking.create_client_run_record(job.run_id, "other", {"Posts Processed": amount}),
        ):
            with pytest.raises(jobtrace.InvalidValueError, match="2\\*\\*53 - 1"):
                call()
    (record,) = sink.client_records()
    assert record["Posts Processed"] == 3
    assert "Token Usage" not in record
    (job_record,) = sink.job_records()
    assert job_record["Posts Processed"] == 3
    assert job_record["Status"] == "Completed"


@FIXTURE_OK
@given(amount=holdable)
def test_every_number_airtable_can_hold_is_accepted(sink: MemorySink, amount: float) -> None:
    sink.clear()
    with jobtrace.tracked_job("post-scoring"), jobtrace.client_run("acme") as client:
        client.update(token_usage=amount)
        client.incr(posts_processed=amount)
    (record,) = sink.client_records()
    assert record["Token Usage"] == amount
    assert record["Posts Processed"] == amount


def test_a_total_that_would_pass_the_limit_is_refused_and_the_counter_keeps_its_value(sink: MemorySink) -> None:
    with jobtrace.tracked_job("post-scoring"), jobtrace.client_run("acme") as client:
        client.incr(posts_processed=MAX_NUMBER - 1)
        with pytest.raises(jobtrace.InvalidValueError, match="total of 'Posts Processed'"):
            client.incr(posts_processed=2, token_usage=1)  # neither counter moves
        client.incr(posts_processed=1)
    (record,) = sink.client_records()
    assert record["Posts Processed"] == MAX_NUMBER
    assert "Token Usage" not in record


@FIXTURE_OK
@given(
    clients=st.lists(
        st.lists(st.one_of(st.integers(0, MAX_NUMBER // 4), st.floats(0, 1e12, allow_nan=False)), max_size=4),
        min_size=1,
        max_size=8,
    )
)
def test_roll_ups_of_any_holdable_counters_never_raise_and_sum_each_client(
    sink: MemorySink, clients: list[list[float]]
) -> None:
    sink.clear()
    with jobtrace.tracked_job("post-scoring"):
        for i, amounts in enumerate(clients):
            with jobtrace.client_run(f"client-{i}") as client:
                for amount in amounts:
                    client.incr(posts_processed=amount)
    (job,) = sink.job_records()
    expected = sum(sum(amounts) for amounts in clients)
    assert job["Clients Processed"] == len(clients)
    assert math.isclose(job.get("Posts Processed", 0), expected, rel_tol=1e-9)
    assert job["Status"] == "Completed"
