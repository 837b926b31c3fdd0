"""A real single-node SLURM cluster on this machine, for the tests: Debian's slurm-wlm + munge, started in a tmp dir.

Private to the test: its own munge daemon and key (a socket in the tmp dir), its own ``slurm.conf``, spool and state
directories, free ports. The one thing outside the tmp dir is ``/etc/slurm/slurm.conf``, a symlink to the test's config
for the cluster's lifetime: the Snakemake SLURM jobstep plugin runs each job's ``srun`` with every ``SLURM_*`` variable
but a few removed, ``SLURM_CONF`` included, so ``srun`` inside a job only finds the default path (on a real cluster it
is there). The cluster is not started when a system config exists.

No accounting database: the executor plugin then asks ``squeue`` for job states (``MinJobAge`` keeps finished jobs
listed). The node advertises two ``gpu`` GRES backed by placeholder files: SLURM allocates them like any GPU, which is
what the profile's ``--gpus`` mapping needs; nothing runs on them. Needs root (slurmd runs jobs as their user) and the
packages; :func:`unavailable` says why not, for a skip.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

PARTITION = "alertclip"
DAEMONS = ("munged", "slurmctld", "slurmd")
CLIENTS = ("sbatch", "squeue", "scancel", "sinfo", "srun")


def unavailable() -> str | None:
    """Why a cluster cannot be started here (a skip reason), or None."""
    if os.geteuid() != 0:
        return "starting slurmd/munged needs root"
    missing = [c for c in DAEMONS if not (shutil.which(c) or Path("/usr/sbin", c).exists())]
    missing += [c for c in CLIENTS if not shutil.which(c)]
    if missing:
        return f"SLURM/munge not installed ({', '.join(missing)} missing): apt-get install slurm-wlm munge (make system-packages)"
    if SYSTEM_CONF.exists() and not _ours(SYSTEM_CONF):
        return f"{SYSTEM_CONF} exists: this machine has its own SLURM, which the test cluster would shadow"
    return None


SYSTEM_CONF = Path("/etc/slurm/slurm.conf")
MARK = "# alertclip test cluster"


def _ours(path: Path) -> bool:
    """A config a test cluster left behind (killed before its teardown), safe to replace."""
    try:
        return path.read_text().startswith(MARK)
    except OSError:
        return path.is_symlink()  # dangling: its tmp dir is gone


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _sbin(name: str) -> str:
    return shutil.which(name) or str(Path("/usr/sbin") / name)


def _mem_mb() -> int:
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemTotal:"):
            return int(line.split()[1]) // 1024 - 1024  # leave the OS a GiB
    raise RuntimeError("no MemTotal in /proc/meminfo")


@dataclass(frozen=True)
class Cluster:
    root: Path
    conf: Path
    node: str
    cpus: int
    gpus: int

    @property
    def env(self) -> dict[str, str]:
        """What a SLURM client (sbatch, squeue, the Snakemake plugin) needs to find this cluster."""
        return {"SLURM_CONF": str(self.conf)}

    def run(self, *cmd: str, check: bool = True) -> subprocess.CompletedProcess:
        return subprocess.run(cmd, env={**os.environ, **self.env}, capture_output=True, text=True, check=check)


def _write_config(root: Path, node: str, cpus: int, gpus: int) -> Path:
    for sub in ("state", "spool", "log", "jobs"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    conf = root / "slurm.conf"
    conf.write_text(f"""\
{MARK} ({root})
ClusterName=alertclip-test
SlurmctldHost={node}
SlurmctldPort={_free_port()}
SlurmdPort={_free_port()}
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
AuthInfo=socket={root / 'munge' / 'munge.socket'}
StateSaveLocation={root / 'state'}
SlurmdSpoolDir={root / 'spool'}
SlurmctldPidFile={root / 'slurmctld.pid'}
SlurmdPidFile={root / 'slurmd.pid'}
SlurmctldLogFile={root / 'log' / 'slurmctld.log'}
SlurmdLogFile={root / 'log' / 'slurmd.log'}
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
MpiDefault=none
SwitchType=switch/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
GresTypes=gpu
ReturnToService=2
SchedulerType=sched/backfill
SchedulerParameters=sched_interval=1
MinJobAge=3600
KillWait=5
InactiveLimit=0
NodeName={node} NodeAddr=127.0.0.1 CPUs={cpus} RealMemory={_mem_mb()} Gres=gpu:{gpus} State=UNKNOWN
PartitionName={PARTITION} Nodes={node} Default=YES MaxTime=INFINITE State=UP
""")
    # slurmd drops a file-less gpu GRES, so each "GPU" is a placeholder file: SLURM allocates it and sets
    # CUDA_VISIBLE_DEVICES, CUDA itself finds no device (this machine has none)
    (root / "dev").mkdir(exist_ok=True)
    for i in range(gpus):
        (root / "dev" / f"gpu{i}").touch()
    (root / "gres.conf").write_text(f"AutoDetect=off\nNodeName={node} Name=gpu File={root / 'dev'}/gpu[0-{gpus - 1}]\n")
    # slurmd 22.05 loads a cgroup plugin even when nothing is tracked by cgroups: v1 only initialises
    (root / "cgroup.conf").write_text("CgroupPlugin=cgroup/v1\nCgroupMountpoint=/sys/fs/cgroup\n")
    return conf


def _start_munge(root: Path) -> None:
    mdir = root / "munge"
    mdir.mkdir(exist_ok=True)
    mdir.chmod(0o755)  # munged: clients reach the socket only through an executable directory
    key = mdir / "munge.key"
    key.write_bytes(os.urandom(1024))
    key.chmod(0o400)
    subprocess.run([_sbin("munged"), "--force", f"--key-file={key}", f"--socket={mdir / 'munge.socket'}",
                    f"--pid-file={mdir / 'munged.pid'}", f"--log-file={mdir / 'munged.log'}",
                    f"--seed-file={mdir / 'munged.seed'}"], check=True, capture_output=True, text=True)


def _kill_pidfile(path: Path) -> None:
    try:
        os.kill(int(path.read_text().split()[0]), signal.SIGTERM)
    except (OSError, ValueError, IndexError):
        pass


@contextmanager
def slurm_cluster(root: Path, cpus: int | None = None, gpus: int = 2, timeout: float = 60):
    """Start munged, slurmctld and slurmd under ``root``; yield the :class:`Cluster` once its node is idle; stop all."""
    root.mkdir(parents=True, exist_ok=True)
    node = socket.gethostname().split(".")[0]
    cpus = cpus or os.cpu_count() or 1
    conf = _write_config(root, node, cpus, gpus)
    cluster = Cluster(root, conf, node, cpus, gpus)
    env = {**os.environ, **cluster.env}
    try:
        SYSTEM_CONF.parent.mkdir(parents=True, exist_ok=True)
        SYSTEM_CONF.unlink(missing_ok=True)  # only ever ours: unavailable() refuses to start over a system config
        SYSTEM_CONF.symlink_to(conf)
        _start_munge(root)
        for daemon in ("slurmctld", "slurmd"):
            proc = subprocess.run([_sbin(daemon), "-f", str(conf)], env=env, capture_output=True, text=True)
            if proc.returncode != 0:
                raise RuntimeError(f"{daemon} did not start: {proc.stderr or proc.stdout}\n{_logs(root)}")
        deadline = time.monotonic() + timeout
        while True:
            state = cluster.run("sinfo", "--noheader", "--format=%T", check=False).stdout.strip()
            if state == "idle":
                break
            if time.monotonic() > deadline:
                raise RuntimeError(f"SLURM node not idle after {timeout:.0f} s (sinfo: {state!r})\n{_logs(root)}")
            time.sleep(0.5)
        yield cluster
    finally:
        subprocess.run(["scancel", "--full", "--quiet", f"--partition={PARTITION}"], env=env, capture_output=True)
        for pid in ("slurmd.pid", "slurmctld.pid", "munge/munged.pid"):
            _kill_pidfile(root / pid)
        if SYSTEM_CONF.is_symlink() and SYSTEM_CONF.resolve() == conf.resolve():
            SYSTEM_CONF.unlink()


def _logs(root: Path) -> str:
    parts = []
    for log in sorted((root / "log").glob("*.log")) + [root / "munge" / "munged.log"]:
        if log.exists():
            parts.append(f"--- {log.name}\n" + "\n".join(log.read_text(errors="replace").splitlines()[-20:]))
    return "\n".join(parts)
