"""Drives a running Updraft API server with the unmodified official Airflow client
(apache-airflow-client==3.3.2): token, DAGs, unpause, trigger with conf, poll to success,
task instances, a task log; then clear the run (every task runs again, as try 2), mark a task
failed (the run fails), and delete the run: the scheduler carries out clear and mark. Run by server/updraft/tests/airflow_client.rs; exits non-zero on
the first failed check.

Then, with a second account of role `op`, the other resources through the same client:
variables, connections (the password never comes back), pools, import errors, tasks, XComs.

Usage: test_client.py HOST USERNAME PASSWORD DAG_ID [OP_USERNAME OP_PASSWORD]
"""

import json
import sys
import time
import urllib.request

import airflow_client.client as client
from airflow_client.client.api.dag_api import DAGApi
from airflow_client.client.api.dag_run_api import DagRunApi
from airflow_client.client.api.dag_source_api import DagSourceApi
from airflow_client.client.api.monitor_api import MonitorApi
from airflow_client.client.api.task_instance_api import TaskInstanceApi
from airflow_client.client.api.version_api import VersionApi
from airflow_client.client.api.connection_api import ConnectionApi
from airflow_client.client.api.import_error_api import ImportErrorApi
from airflow_client.client.api.pool_api import PoolApi
from airflow_client.client.api.task_api import TaskApi
from airflow_client.client.api.variable_api import VariableApi
from airflow_client.client.api.x_com_api import XComApi
from airflow_client.client.models.connection_body import ConnectionBody
from airflow_client.client.exceptions import ApiException
from airflow_client.client.models.dag_patch_body import DAGPatchBody
from airflow_client.client.models.dag_run_clear_body import DAGRunClearBody
from airflow_client.client.models.patch_task_instance_body import PatchTaskInstanceBody
from airflow_client.client.models.pool_body import PoolBody
from airflow_client.client.models.pool_patch_body import PoolPatchBody
from airflow_client.client.models.trigger_dag_run_post_body import TriggerDAGRunPostBody
from airflow_client.client.models.variable_body import VariableBody


def check(condition, message):
    if not condition:
        print(f"FAILED: {message}", flush=True)
        sys.exit(1)
    print(f"ok: {message}", flush=True)


def wait_for_run(api_client, dag_id, run_id, wanted):
    """Polls a run until it ends; checks it ended in `wanted`."""
    deadline = time.time() + 120
    state = None
    while time.time() < deadline:
        state = DagRunApi(api_client).get_dag_run(dag_id, run_id).state.value
        if state in ("success", "failed"):
            break
        time.sleep(0.5)
    check(state == wanted, f"the run ends in {wanted} (last state {state})")


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
        source = DagSourceApi(api_client).get_dag_source(dag_id)
        check(source.content and f"dag: {dag_id}" in source.content, "get_dag_source returns the DAG file")

        paused = DAGApi(api_client).patch_dag(dag_id, DAGPatchBody(is_paused=True), update_mask=["is_paused"])
        check(paused.is_paused is True, "patch_dag pauses")
        unpaused = DAGApi(api_client).patch_dag(dag_id, DAGPatchBody(is_paused=False), update_mask=["is_paused"])
        check(unpaused.is_paused is False, "patch_dag unpauses")

        conf = {"region": "eu", "attempt": 1}
        run = DagRunApi(api_client).trigger_dag_run(dag_id, TriggerDAGRunPostBody(logical_date=None, conf=conf))
        check(run is not None and run.dag_run_id, "trigger_dag_run answers 200 with a DAGRunResponse")
        check(run.conf == conf, f"the run carries its conf ({run.conf})")
        check(str(run.state.value) in ("queued", "running"), f"a new run is queued ({run.state})")

        wait_for_run(api_client, dag_id, run.dag_run_id, "success")
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

        cleared = DagRunApi(api_client).clear_dag_run(dag_id, run.dag_run_id, DAGRunClearBody(dry_run=False))
        check(cleared.actual_instance is not None, "clear_dag_run")
        wait_for_run(api_client, dag_id, run.dag_run_id, "success")
        tis = TaskInstanceApi(api_client).get_task_instances(dag_id, run.dag_run_id).task_instances
        tries = {t.task_id: t.try_number for t in tis}
        check(all(n == 2 for n in tries.values()), f"after the clear every task ran again: {tries}")
        log = TaskInstanceApi(api_client).get_log(dag_id, run.dag_run_id, first.task_id, 2, full_content=True)
        check(len(log.content.actual_instance) > 0, "get_log of try 2")

        TaskInstanceApi(api_client).patch_task_instance(
            dag_id, run.dag_run_id, "load", PatchTaskInstanceBody(new_state="failed")
        )
        wait_for_run(api_client, dag_id, run.dag_run_id, "failed")
        load = TaskInstanceApi(api_client).get_task_instance(dag_id, run.dag_run_id, "load")
        check(load.state.value == "failed", f"patch_task_instance marked load failed ({load.state})")

        DagRunApi(api_client).delete_dag_run(dag_id, run.dag_run_id)
        try:
            DagRunApi(api_client).get_dag_run(dag_id, run.dag_run_id)
            check(False, "a deleted run is gone")
        except ApiException as error:
            check(error.status == 404, f"delete_dag_run: the run is gone ({error.status})")
    if len(sys.argv) > 6:
        operations(host, sys.argv[5], sys.argv[6], dag_id)
    print("all checks passed", flush=True)


def operations(host, username, password, dag_id):
    """What an `op` account manages, and the remaining read endpoints."""
    configuration = client.Configuration(host=host, access_token=token(host, username, password))
    with client.ApiClient(configuration) as api_client:
        variables = VariableApi(api_client)
        created = variables.post_variable(VariableBody(key="region", value="eu", description="where"))
        check(created.key == "region", "post_variable")
        check(variables.get_variable("region").value == "eu", "get_variable")
        variables.patch_variable("region", VariableBody(key="region", value="us"))
        check(variables.get_variable("region").value == "us", "patch_variable")
        listed = variables.get_variables()
        check(listed.total_entries == 1 and listed.variables[0].value == "***", "get_variables hides values")
        variables.delete_variable("region")
        check(variables.get_variables().total_entries == 0, "delete_variable")

        connections = ConnectionApi(api_client)
        body = ConnectionBody(connection_id="wh", conn_type="postgres", host="db", login="etl", password="hunter2")
        created = connections.post_connection(body)
        check(created.password is None, "post_connection does not return the password")
        got = connections.get_connection("wh")
        check(got.host == "db" and got.password is None, "get_connection never returns the password")
        check(any(c.connection_id == "wh" for c in connections.get_connections().connections), "get_connections")
        connections.delete_connection("wh")

        pools = PoolApi(api_client)
        check(pools.post_pool(PoolBody(name="etl", slots=4)).open_slots == 4, "post_pool")
        pools.patch_pool("etl", PoolPatchBody(slots=8))
        check(pools.get_pool("etl").slots == 8, "patch_pool")
        check(pools.get_pools().total_entries == 2, "get_pools (default_pool and etl)")
        pools.delete_pool("etl")

        check(ImportErrorApi(api_client).get_import_errors().total_entries == 0, "get_import_errors")
        tasks = TaskApi(api_client).get_tasks(dag_id)
        check(tasks.total_entries == 3, f"get_tasks ({[t.task_id for t in tasks.tasks]})")
        run = DagRunApi(api_client).trigger_dag_run(dag_id, TriggerDAGRunPostBody(logical_date=None))
        wait_for_run(api_client, dag_id, run.dag_run_id, "success")
        xcoms = XComApi(api_client).get_xcom_entries(dag_id, run.dag_run_id, "extract")
        check(xcoms.total_entries == 0, "get_xcom_entries")


if __name__ == "__main__":
    main()
