"""Issue 18 finding 12: gunicorn's worker count comes from the container's cgroup limits (CPU
quota and memory), not the host's CPU count; WEB_CONCURRENCY overrides. The derivation reads
fake cgroup files in a temporary directory, as the kernel lays them out (v2 and v1)."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

import pytest

from app.config import load_config

ROOT = Path(__file__).resolve().parent.parent
MB = 1024 * 1024


def gunicorn_conf(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, **env: str) -> ModuleType:
    """gunicorn.conf.py loaded as gunicorn loads it, with `env` set (and its metrics directory
    pointed at tmp_path so loading it changes nothing else)."""
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(tmp_path / "metrics"))
    for name in ("WEB_CONCURRENCY", "WEB_THREADS", "WEB_WORKER_MEMORY_MB"):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    spec = importlib.util.spec_from_file_location(
        "gunicorn_conf_under_test", ROOT / "gunicorn.conf.py"
    )
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def cgroup_v2(root: Path, cpu: str, memory: str) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    (root / "cpu.max").write_text(cpu + "\n")
    (root / "memory.max").write_text(memory + "\n")
    return root


def cgroup_v1(root: Path, quota: int, period: int, memory: int) -> Path:
    (root / "cpu,cpuacct").mkdir(parents=True)
    (root / "cpu,cpuacct" / "cpu.cfs_quota_us").write_text(f"{quota}\n")
    (root / "cpu,cpuacct" / "cpu.cfs_period_us").write_text(f"{period}\n")
    (root / "memory").mkdir()
    (root / "memory" / "memory.limit_in_bytes").write_text(f"{memory}\n")
    return root


@pytest.mark.parametrize(
    ("cpu", "memory", "host_cpus", "expected"),
    [
        # Render's 512 MB plan (0.5 CPU) on a 16-core host: one worker, not 16.
        ("50000 100000", str(512 * MB), 16, 1),
        # 2 CPUs, 2 GB: the CPU quota decides.
        ("200000 100000", str(2048 * MB), 16, 2),
        # 1.5 CPUs round up to 2 cores' worth.
        ("150000 100000", "max", 16, 2),
        # 8 CPUs but 512 MB: memory decides (4 x 128 MB).
        ("800000 100000", str(512 * MB), 16, 4),
        # No limits at all: one per host core.
        ("max 100000", "max", 3, 3),
        # Less memory than one worker's worth still starts one.
        ("max 100000", str(64 * MB), 4, 1),
    ],
)
def test_workers_follow_the_cgroup_v2_limits(
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    cpu: str,
    memory: str,
    host_cpus: int,
    expected: int,
) -> None:
    conf = gunicorn_conf(monkeypatch, tmp_path)
    root = cgroup_v2(tmp_path / "cgroup", cpu, memory)
    assert conf.container_workers(root, host_cpus, 128) == expected


def test_workers_follow_the_cgroup_v1_limits(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    conf = gunicorn_conf(monkeypatch, tmp_path)
    limited = cgroup_v1(tmp_path / "limited", 300000, 100000, 1024 * MB)
    assert conf.container_workers(limited, 16, 128) == 3
    assert conf.container_workers(limited, 16, 512) == 2  # WEB_WORKER_MEMORY_MB=512
    unlimited = cgroup_v1(tmp_path / "unlimited", -1, 100000, (1 << 63) - 4096)
    assert conf.container_workers(unlimited, 6, 128) == 6
    assert conf.container_workers(tmp_path / "no-cgroup-at-all", 5, 128) == 5


def test_web_concurrency_overrides_and_the_defaults_agree_with_the_app(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    assert gunicorn_conf(monkeypatch, tmp_path, WEB_CONCURRENCY="7").workers == 7
    derived = gunicorn_conf(monkeypatch, tmp_path)
    assert derived.workers >= 1
    # The app sizes its database pool and Stripe bulkhead from WEB_THREADS: with it unset,
    # gunicorn's threads and the app's idea of them must be the same number.
    assert derived.threads == load_config({})["WEB_THREADS"]
