"""What a local sweep starts besides the trials: Ray's dashboard only with --dashboard."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from orchestrator.errors import UserError

REPO = Path(__file__).resolve().parents[2]


def test_dashboard_without_its_packages_is_a_one_line_error_before_ray_starts(monkeypatch):
    import sys

    import ray

    from orchestrator import tune_backend

    monkeypatch.setattr(ray, "is_initialized", lambda: False)
    monkeypatch.setitem(sys.modules, "ray.dashboard.optional_deps", None)  # its import fails: not installed

    def no_init(**kwargs):
        raise AssertionError("ray.init must not be called")

    monkeypatch.setattr(ray, "init", no_init)
    with pytest.raises(UserError, match=r"ray\[default\]"):
        tune_backend.connect(None, num_cpus=1, dashboard=True)


@pytest.mark.parametrize("opened_before", [False, True])
def test_disconnect_ends_only_the_ray_session_connect_opened(monkeypatch, opened_before):
    import ray

    from orchestrator import tune_backend

    calls = []
    monkeypatch.setattr(tune_backend, "_opened", False)
    monkeypatch.setattr(ray, "is_initialized", lambda: opened_before or bool(calls))
    monkeypatch.setattr(ray, "init", lambda **kwargs: calls.append("init"))
    monkeypatch.setattr(ray, "cluster_resources", lambda: {"CPU": 1.0})
    monkeypatch.setattr(ray, "shutdown", lambda: calls.append("shutdown"))
    tune_backend.connect(None, num_cpus=1)
    tune_backend.disconnect()
    tune_backend.disconnect()  # a second time: nothing left to end
    # a session its caller had opened (a notebook, a test) is the caller's to end
    assert calls == ([] if opened_before else ["init", "shutdown"])


# Starts a local cluster the way `decaylab sweep` does, then lists Ray's dashboard process (its
# arguments and the TCP ports it listens on).
PROBE = """
import json, os, time
from orchestrator.tune_backend import connect, shutdown
import psutil  # after Ray, which ships it
connect(None, num_cpus=1)
time.sleep(2)
found = []
for p in psutil.Process(os.getpid()).children(recursive=True):
    try:
        args = p.cmdline()
        if any(a.endswith('dashboard.py') for a in args):
            ports = [c.laddr.port for c in p.net_connections(kind='tcp') if c.status == 'LISTEN']
            found.append({'args': args, 'ports': ports})
    except psutil.Error:
        pass
shutdown()
print('DASHBOARD ' + json.dumps(found))
"""


@pytest.mark.slow
def test_a_local_sweep_starts_no_dashboard_only_ray_s_inert_api_server():
    out = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True, cwd=REPO, timeout=300,
                         env={k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"})
    line = next((ln for ln in out.stdout.splitlines() if ln.startswith("DASHBOARD ")), None)
    assert line is not None, out.stderr[-2000:]
    processes = json.loads(line.removeprefix("DASHBOARD "))
    # Ray 2.60 always starts dashboard.py as its API server; without --dashboard it must load only the
    # usage-stats module (disabled here), serve no frontend and listen on no port
    for proc in processes:
        assert "--modules-to-load=UsageStatsHead" in proc["args"] and "--disable-frontend" in proc["args"]
        assert proc["ports"] == []


# Starts a local cluster the way `decaylab sweep` does, waits for the workers Ray starts in `ray.init`,
# then runs two Tune trials through decaylab's `_fit` and prints which processes ran them.
PRESTART_PROBE = """
import json, os, sys, time
from ray import tune
from orchestrator import tune_backend as tb
import psutil  # after Ray, which ships it
tb.connect(None, num_cpus=2)
tb._local = sys.argv[1] == "local"  # "joined": as if the cluster had been joined by address
deadline, idle = time.time() + 60, []
while len(idle) < 2 and time.time() < deadline:
    time.sleep(0.2)
    idle = []
    for p in psutil.Process(os.getpid()).children(recursive=True):
        try:
            if p.cmdline()[:1] == ["ray::IDLE"]:
                idle.append(p.pid)
        except psutil.Error:
            pass

def trial(config):
    tune.report({"worker": os.getpid()})

tuner = tune.Tuner(tune.with_resources(trial, {"cpu": 1}), param_space={"x": tune.grid_search([0, 1])},
                   run_config=tune.RunConfig(storage_path=sys.argv[2], verbose=0))
tb._fit(tuner)
workers = sorted(r.metrics["worker"] for r in tuner.get_results())
tb.disconnect()
print("WORKERS " + json.dumps({"prestarted": sorted(idle), "trials": workers}))
"""


@pytest.mark.slow
@pytest.mark.parametrize("cluster", ["local", "joined"])
def test_a_local_sweep_s_trials_run_in_the_workers_ray_prestarted(tmp_path, cluster):
    out = subprocess.run([sys.executable, "-c", PRESTART_PROBE, cluster, str(tmp_path)], capture_output=True,
                         text=True, cwd=REPO, timeout=300,
                         env={k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"})
    line = next((ln for ln in out.stdout.splitlines() if ln.startswith("WORKERS ")), None)
    assert line is not None, out.stderr[-3000:]
    seen = json.loads(line.removeprefix("WORKERS "))
    assert len(seen["prestarted"]) == 2 and len(seen["trials"]) == 2, seen
    taken = set(seen["trials"]) & set(seen["prestarted"])
    # local: the trial actors take the idle workers (no runtime_env); elsewhere Tune's runtime_env is kept,
    # and with it Ray starts new workers (which is also what shows this test can fail)
    assert taken == (set(seen["trials"]) if cluster == "local" else set()), seen


needs_proc = pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="finds child processes through /proc")


@needs_proc
def test_only_the_autoscaler_monitor_among_the_children_is_killed(tmp_path):
    from orchestrator import tune_backend as tb

    script = tmp_path / "ray" / "autoscaler" / "_private" / "monitor.py"  # where Ray's script ends
    script.parent.mkdir(parents=True)
    script.write_text("import time\ntime.sleep(60)\n")
    monitor = subprocess.Popen([sys.executable, "-u", str(script), "--logs-dir=x"])
    other = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)", str(tmp_path / "monitor.py")])
    try:
        assert {monitor.pid, other.pid} <= set(tb.child_processes(os.getpid()))
        assert tb.end_autoscaler_monitor() == [monitor.pid]
        assert monitor.wait(timeout=10) == -9  # SIGKILL
        assert other.poll() is None
        assert tb.child_processes(other.pid) == []
    finally:
        for proc in (monitor, other):
            proc.kill()
            proc.wait()


# Starts a local cluster the way `decaylab sweep` does and ends it with `disconnect`, recording which
# children the monitor's end killed
MONITOR_PROBE = """
import json, os
from orchestrator import tune_backend as tb
tb.connect(None, num_cpus=1)
before, killed, end = tb.child_processes(os.getpid()), [], tb.end_autoscaler_monitor
tb.end_autoscaler_monitor = lambda: killed.extend(end()) or killed
tb.disconnect()
print("CHILDREN " + json.dumps({"before": before, "killed": killed, "after": tb.child_processes(os.getpid())}))
"""


@pytest.mark.slow
@needs_proc
def test_a_local_cluster_ends_with_its_autoscaler_monitor_killed_first_and_nothing_left():
    """Ray's shutdown gives the monitor a second to exit after SIGTERM, which it spends reporting to the GCS
    Ray stopped just before; killed first, it costs nothing. Fails if Ray moves or renames the script."""
    out = subprocess.run([sys.executable, "-c", MONITOR_PROBE], capture_output=True, text=True, cwd=REPO,
                         timeout=300, env={k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"})
    line = next((ln for ln in out.stdout.splitlines() if ln.startswith("CHILDREN ")), None)
    assert line is not None, out.stderr[-3000:]
    seen = json.loads(line.removeprefix("CHILDREN "))
    assert len(seen["killed"]) == 1 and set(seen["killed"]) <= set(seen["before"]), seen
    assert seen["after"] == [], seen
