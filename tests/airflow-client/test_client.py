"""Drives a running Updraft API server with the unmodified official Airflow client
(apache-airflow-client==3.3.2): token, DAGs, unpause, trigger with conf, poll to success,
task instances, a task log. Run by server/updraft/tests/airflow_client.rs; exits non-zero on
the first failed check.

Usage: test_client.py HOST USERNAME PASSWORD DAG_ID
"""

import json
import sys
import time
import urllib.request

import airflow_client.client as client
from airflow_client.client.api.dag_api import DAGApi
from airflow_client.client.api.dag_run_api import DagRunApi
from airflow_client.client.api.monitor_api import MonitorApi
from airflow_client.client.api.task_instance_api import TaskInstanceApi
from airflow_client.client.api.version_api import VersionApi
from airflow_client.client.models.dag_patch_body import DAGPatchBody
from airflow_client.client.models.trigger_dag_run_post_body import TriggerDAGRunPostBody


def check(condition, message):
    if not condition:
        print(f"FAILED: {message}", flush=True)
        sys.exit(1)
    print(f"ok: {message}", flush=True)


def token(host, username, password):
    """The client's README flow: POST /auth/token, expect exactly 201."""
    body = json.dumps({"username": username, "password": password}).encode()
    request = urllib.request.Request(
        f"{host}/auth/token", data=body, headers={"Content-Type": "application/json"}, method="POST"
    )
    with urllib.request.urlopen(request) as response:
        check(response.status == 201, f"POST /auth/token answers 201 (got {response.status})")
        return json.load(response)["access_token"]


def main():
    host, username, password, dag_id = sys.argv[1:5]
    configuration = client.Configuration(host=host, access_token=token(host, username, password))
    with client.ApiClient(configuration) as api_client:
        health = MonitorApi(api_client).get_health()
        check(health.metadatabase.status == "healthy", "health: the metadata database is healthy")
        check(VersionApi(api_client).get_version().version, "version")

        dags = DAGApi(api_client).get_dags(limit=100)
        ids = [d.dag_id for d in dags.dags]
        check(dag_id in ids, f"get_dags lists {dag_id} ({dags.total_entries} DAGs: {ids})")
        check(DAGApi(api_client).get_dag(dag_id).dag_id == dag_id, "get_dag")
        details = DAGApi(api_client).get_dag_details(dag_id)
        check(details.dag_id == dag_id, "get_dag_details")

        paused = DAGApi(api_client).patch_dag(dag_id, DAGPatchBody(is_paused=True), update_mask=["is_paused"])
        check(paused.is_paused is True, "patch_dag pauses")
        unpaused = DAGApi(api_client).patch_dag(dag_id, DAGPatchBody(is_paused=False), update_mask=["is_paused"])
        check(unpaused.is_paused is False, "patch_dag unpauses")

        conf = {"region": "eu", "attempt": 1}
        run = DagRunApi(api_client).trigger_dag_run(dag_id, TriggerDAGRunPostBody(logical_date=None, conf=conf))
        check(run is not None and run.dag_run_id, "trigger_dag_run answers 200 with a DAGRunResponse")
        check(run.conf == conf, f"the run carries its conf ({run.conf})")
        check(str(run.state.value) in ("queued", "running"), f"a new run is queued ({run.state})")

        deadline = time.time() + 120
        state = None
        while time.time() < deadline:
            state = DagRunApi(api_client).get_dag_run(dag_id, run.dag_run_id).state.value
            if state in ("success", "failed"):
                break
            time.sleep(0.5)
        check(state == "success", f"the run ends in success (last state {state})")
        runs = DagRunApi(api_client).get_dag_runs(dag_id, limit=10)
        check(any(r.dag_run_id == run.dag_run_id for r in runs.dag_runs), "get_dag_runs lists the run")

        tis = TaskInstanceApi(api_client).get_task_instances(dag_id, run.dag_run_id)
        states = {t.task_id: (t.state.value if t.state else None) for t in tis.task_instances}
        check(states and all(s == "success" for s in states.values()), f"every task instance succeeded: {states}")
        first = sorted(tis.task_instances, key=lambda t: t.task_id)[0]
        ti = TaskInstanceApi(api_client).get_task_instance(dag_id, run.dag_run_id, first.task_id)
        check(ti.try_number == 1, f"get_task_instance: try {ti.try_number}")

        log = TaskInstanceApi(api_client).get_log(dag_id, run.dag_run_id, first.task_id, 1, full_content=True)
        content = log.content.actual_instance if hasattr(log.content, "actual_instance") else log.content
        lines = [getattr(entry, "event", entry) for entry in content]
        print("\n".join(f"  log: {line}" for line in lines), flush=True)
        check(len(lines) > 0, f"get_log returns the task's log ({len(lines)} lines)")
    print("all checks passed", flush=True)


if __name__ == "__main__":
    main()
