"""Sequential triggers through the official Airflow client, timed per call, as Airflow's own
figure was measured (../shared/workloads/README.md). Run by `cargo bench -p updraft-api --bench
api` when the client's venv exists (server/updraft/tests/airflow_client.rs creates it).

Usage: bench_triggers.py HOST TOKEN DAG_ID COUNT
"""

import sys
import time

import airflow_client.client as client
from airflow_client.client.api.dag_run_api import DagRunApi
from airflow_client.client.models.trigger_dag_run_post_body import TriggerDAGRunPostBody


def main():
    host, token, dag_id, count = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
    configuration = client.Configuration(host=host, access_token=token)
    with client.ApiClient(configuration) as api_client:
        api = DagRunApi(api_client)
        for _ in range(20):
            api.trigger_dag_run(dag_id, TriggerDAGRunPostBody(logical_date=None))
        latencies = []
        start = time.perf_counter()
        for _ in range(count):
            t = time.perf_counter()
            run = api.trigger_dag_run(dag_id, TriggerDAGRunPostBody(logical_date=None))
            latencies.append(time.perf_counter() - t)
            assert run is not None and run.dag_run_id
        elapsed = time.perf_counter() - start
    latencies.sort()
    p50 = latencies[round((len(latencies) - 1) * 0.5)] * 1000
    p99 = latencies[round((len(latencies) - 1) * 0.99)] * 1000
    print(f"{count} {count / elapsed:.0f} {p50:.2f} {p99:.2f}")


if __name__ == "__main__":
    main()
