"""Runs carried into child processes (child_env) and back (collect)."""

from __future__ import annotations

import os
import textwrap
from pathlib import Path

import pytest

import jobtrace
from jobtrace import context
from jobtrace.sinks import MemorySink

from .conftest import run_child
from .filesink import FileSink

# The child: a script of its own, tracking a job and a client, reporting what its sink saw.
CHILD = textwrap.dedent(
    """
    import json, sys
    import jobtrace
    from jobtrace.sinks import MemorySink
    from filesink import FileSink
    sinks = [MemorySink()]
    if len(sys.argv) > 1:
        sinks.append(FileSink(sys.argv[1]))
    jobtrace.configure(sinks, strict=True)
    refused = None
    with jobtrace.tracked_job("child-script") as job:
        try:
            job.update(progress="from the child")
        except jobtrace.NoActiveRunError as exc:
            refused = str(exc)
        with jobtrace.client_run(CLIENT) as client:
            client.incr(posts_processed=7, token_usage=70)
            where = [jobtrace.current_run_id(), jobtrace.current_client_id()]
    jobtrace.flush()
    print(json.dumps({"job_run_id": job.run_id, "where": where, "refused": refused,
                      "jobs": sinks[0].job_records(), "clients": sinks[0].client_records()}))
    """
)


def child(client: str, path: Path | None = None) -> str:
    code = f"CLIENT = {client!r}\n" + CHILD
    if path is not None:
        code = f"import sys; sys.argv = ['-c', {str(path)!r}]\n" + code
    return code


def test_child_env_is_empty_outside_a_run_and_carries_run_and_client_inside() -> None:
    assert jobtrace.child_env() == {}
    with jobtrace.tracked_job("parent") as job:
        assert jobtrace.child_env() == {"JOBTRACE_RUN_ID": job.run_id}
        with jobtrace.client_run("acme"):
            assert jobtrace.child_env() == {"JOBTRACE_RUN_ID": job.run_id, "JOBTRACE_CLIENT_ID": "acme"}


def test_child_process_joins_the_parents_run_and_leaves_the_job_record_alone(sink: MemorySink) -> None:
    with jobtrace.tracked_job("parent") as job:
        out = run_child(child("acme"), env=jobtrace.child_env())

    assert out["job_run_id"] == job.run_id
    assert out["where"] == [job.run_id, "acme"]
    # The child never created, updated or completed the parent's job record...
    assert out["jobs"] == []
    assert "owned by another process" in out["refused"]
    # ...but owns its client run, under the parent's run ID.
    [client] = out["clients"]
    assert client["Run ID"] == f"{job.run_id}-acme"
    assert (client["Status"], client["Posts Processed"]) == ("Completed", 7)
    # The parent's one job record is its own, completed once.
    [record] = sink.job_records()
    assert (record["Run ID"], record["Status"], record["Job Type"]) == (job.run_id, "Completed", "parent")


def test_child_without_tracked_job_attaches_client_run_to_the_inherited_run() -> None:
    code = textwrap.dedent(
        """
        import json, jobtrace
        from jobtrace.sinks import MemorySink
        sink = MemorySink(); jobtrace.configure([sink], strict=True)
        with jobtrace.client_run("solo") as c:
            c.incr(posts_processed=1)
        print(json.dumps({"clients": sink.client_records()}))
        """
    )
    out = run_child(code, env={"JOBTRACE_RUN_ID": "251005-210247"})
    assert [(c["Run ID"], c["Status"]) for c in out["clients"]] == [("251005-210247-solo", "Completed")]


def test_child_handed_the_parents_client_run_continues_it_without_completing_it(tmp_path: Path) -> None:
    path = tmp_path / "changes.jsonl"
    file_sink = FileSink(path)
    memory = MemorySink()
    # The first sink that can answer is read back: the shared one, not this process's memory.
    jobtrace.configure([file_sink, memory], strict=True)
    with jobtrace.tracked_job("parent") as job, jobtrace.client_run("acme") as client:
        client.incr(posts_processed=5)
        out = run_child(child("acme", path), env=jobtrace.child_env())
        # The child wrote the record's new total; the parent continues from it.
        jobtrace.collect("acme")
        client.incr(posts_processed=1)

    children = [c for c in out["clients"] if c["Client ID"] == "acme"]
    assert [c.get("Status") for c in children] == [None], "the child must not start or complete it"
    assert children[0]["Posts Processed"] == 12
    record = memory.client_record(job.run_id, "acme")
    assert record is not None
    assert (record["Status"], record["Posts Processed"]) == ("Completed", 13)
    assert memory.job_records()[0]["Posts Processed"] == 13


def test_collect_rolls_up_client_runs_recorded_by_child_processes(tmp_path: Path) -> None:
    path = tmp_path / "changes.jsonl"
    memory = MemorySink()
    jobtrace.configure([FileSink(path), memory], strict=True)
    with jobtrace.tracked_job("client-by-client"):
        for client_id in ("acme", "globex"):
            run_child(child(client_id, path), env=jobtrace.child_env())
            jobtrace.collect(client_id)
        jobtrace.collect("acme")  # counted once, however often collected

    [record] = memory.job_records()
    assert record["Clients Processed"] == 2
    assert record["Clients Succeeded"] == 2
    assert record["Posts Processed"] == 14
    assert record["Token Usage"] == 140
    assert record["Last Client Processed"] == "acme"


def test_collect_without_a_readable_record_says_why() -> None:
    with jobtrace.tracked_job("parent"), pytest.raises(jobtrace.RecordNotFoundError, match="read back"):
        jobtrace.collect("never-ran")


def test_collect_outside_a_job_needs_a_run() -> None:
    with pytest.raises(jobtrace.NoActiveRunError):
        jobtrace.collect("acme")


def test_malformed_run_id_in_the_environment_is_ignored_with_a_warning() -> None:
    out = run_child(child("acme"), env={"JOBTRACE_RUN_ID": "not-a-run-id"})
    assert "ignoring JOBTRACE_RUN_ID" in out["stderr"]
    assert out["job_run_id"] != "not-a-run-id"
    assert [j["Run ID"] for j in out["jobs"]] == [out["job_run_id"]]  # a job of its own


def test_environment_is_read_once_not_per_call(monkeypatch: pytest.MonkeyPatch, sink: MemorySink) -> None:
    monkeypatch.setenv("JOBTRACE_RUN_ID", "251005-210247")
    context.read_parent_env()
    monkeypatch.setenv("JOBTRACE_RUN_ID", "260101-000000")
    with jobtrace.tracked_job("child") as job:
        assert job.run_id == "251005-210247"
    assert sink.job_records() == []


def test_invalid_client_id_in_the_environment_keeps_the_run_and_drops_the_client(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    with pytest.warns(RuntimeWarning, match="JOBTRACE_CLIENT_ID"):
        parent = context.read_parent_env({"JOBTRACE_RUN_ID": "251005-210247", "JOBTRACE_CLIENT_ID": "a\x00b"})
    assert parent == context.ParentRun("251005-210247", None)


def test_process_pool_example_runs_every_client_under_one_run_id() -> None:
    import subprocess
    import sys

    root = Path(__file__).resolve().parents[2]
    env = {k: v for k, v in os.environ.items() if not k.startswith("JOBTRACE_")}
    env["PYTHONPATH"] = str(root)
    proc = subprocess.run(
        [sys.executable, str(root / "examples" / "process_pool.py")],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    lines = dict(line.split(": ", 1) for line in proc.stdout.splitlines() if ": " in line)
    run_id = lines["run"]
    assert lines["worker run IDs"] == run_id
    assert lines["clients"] == "4 Completed"
    assert lines["job"] == "Completed, Clients Processed 4, Posts Processed 10"
