"""Every way a command can fail ends in exactly one line on stderr, its documented exit status
(`videofocus.exit_status`) and no traceback; and nothing already written is lost.

Each case runs the command users type (`python -m videofocus.cli ...`) as a subprocess, with
progress bars off, against one tiny trained checkpoint and one finished results file shared by
the module. File-system failures are real: the kernel refuses the writes (a path under /sys, a
read-only or full tmpfs mounted in a private mount namespace where `unshare` is allowed, a file
size limit), nothing is monkeypatched in the child.
"""

from __future__ import annotations

import json
import os
import re
import resource
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from videofocus import exit_status
from videofocus.cli import build_parser
from videofocus.config import config_from_dict
from videofocus.inference.model import load_inference_model
from videofocus.labeling.job import LabelJobOptions, run_label_job
from videofocus.labeling.results import ResultWriter, meta_path, read_results
from videofocus.labeling.sharding import ShardSpec
from videofocus.train.pipeline import run_stages

TIMEOUT = 240


@dataclass(frozen=True)
class Workspace:
    """What every case starts from: the tiny dataset, a trained warm-up checkpoint and the
    finished labels of its manifest (with their sidecar)."""

    manifest: Path
    checkpoint: Path
    labels: Path
    videos: list[Path]


@pytest.fixture(scope="module")
def workspace(tmp_path_factory, tiny_data, tiny_config) -> Workspace:
    root = tmp_path_factory.mktemp("cli_errors")
    cfg = config_from_dict(tiny_config(tiny_data, root / "runs", training=True, name="cli_errors"))
    (result,) = run_stages(cfg, ["warmup"])
    manifest = tiny_data / "manifest.jsonl"
    labels = root / "labels.jsonl"
    job = LabelJobOptions(batch_size=4, num_workers=0, progress=False)
    run_label_job(
        manifest, load_inference_model(result.final_dir), labels, job=job, shard=ShardSpec(1, 0)
    )
    videos = sorted((tiny_data / "videos").glob("*.mp4"))
    return Workspace(manifest, result.final_dir, labels, videos)


@pytest.fixture(scope="module")
def can_mount() -> bool:
    """Whether this machine lets us mount a tmpfs in a private user + mount namespace."""
    if shutil.which("unshare") is None:
        return False
    probe = subprocess.run(
        ["unshare", "-rm", "sh", "-c", "mount -t tmpfs tmpfs /mnt"],
        capture_output=True,
        timeout=30,
    )
    return probe.returncode == 0


# A tmpfs on $1 (mount options $2), filled with $3 bytes, then the command; what the command
# left in $1/labels.jsonl is copied to $4 for the checks (the mount dies with the namespace).
_IN_TMPFS = """
mnt=$1 keep=$4
mount -t tmpfs -o "$2" tmpfs "$mnt" || exit 97
if [ "$3" -gt 0 ]; then head -c "$3" /dev/zero > "$mnt/filler"; fi
shift 4
"$@"
status=$?
cp "$mnt/labels.jsonl" "$keep" 2>/dev/null
exit $status
"""


@dataclass
class Case:
    """One failure: the arguments after `videofocus`, what must happen, what must be left."""

    args: list[str]
    status: int
    says: str  # a part of the one error line
    matches: str = ""  # and a regular expression it must match
    tmpfs: str | None = None  # mount options of a tmpfs on <tmp>/mnt (needs `unshare`)
    fill: int = 0  # bytes of filler written into that tmpfs first
    file_size_limit: int | None = None  # RLIMIT_FSIZE of the child, in bytes
    hold_lock: Path | None = None  # results file whose writer lock the test holds meanwhile
    interrupt_after_rows: int | None = None  # Ctrl-C once the output has that many rows
    check: Callable[[], None] = field(default=lambda: None)  # what must be left afterwards
    skip: str | None = None  # why this machine cannot run the case


def _label(ws: Workspace, out: Path | str, *extra: str, source: Path | None = None) -> list[str]:
    return [
        "label",
        str(source or ws.manifest),
        "--checkpoint",
        str(ws.checkpoint),
        "--out",
        str(out),
        "--no-progress",
        "--workers",
        "0",
        "--batch-size",
        "4",
        *extra,
    ]


def _unchanged(path: Path) -> Callable[[], None]:
    before = path.read_bytes()

    def check() -> None:
        assert path.read_bytes() == before, f"{path} was modified"

    return check


def _complete_rows(path: Path, ids: set[str]) -> Callable[[], None]:
    """The file holds whole rows only, each of a known input, once."""

    def check() -> None:
        data = path.read_bytes()
        assert data == b"" or data.endswith(b"\n"), "a torn row was left behind"
        rows = [r["id"] for r in read_results(path)]
        assert len(rows) == len(set(rows)) and set(rows) <= ids

    return check


def _ids(ws: Workspace) -> set[str]:
    return {r["id"] for r in read_results(ws.labels)}


def _copy_labels(ws: Workspace, tmp_path: Path, sidecar: bool = True) -> Path:
    out = tmp_path / "labels.jsonl"
    shutil.copy(ws.labels, out)
    if sidecar:
        shutil.copy(meta_path(ws.labels), meta_path(out))
    return out


def case_lock_held(ws: Workspace, tmp: Path) -> Case:
    out = _copy_labels(ws, tmp)
    return Case(
        _label(ws, out),
        exit_status.SYSTEM,
        "is being written by another process",
        hold_lock=out,
        check=_unchanged(out),
    )


def case_read_only_sysfs(ws: Workspace, tmp: Path) -> Case:
    # sysfs takes no new files, even from root (EPERM, or EROFS where /sys is mounted ro)
    return Case(
        _label(ws, "/sys/videofocus-test/labels.jsonl"),
        exit_status.SYSTEM,
        "/sys/",
        skip=None if Path("/sys/kernel").is_dir() else "no sysfs on /sys",
    )


def case_read_only_tmpfs(ws: Workspace, tmp: Path) -> Case:
    return Case(
        _label(ws, tmp / "mnt" / "labels.jsonl"),
        exit_status.SYSTEM,
        "labels.jsonl: Read-only file system",
        tmpfs="ro",
    )


def case_disk_full(ws: Workspace, tmp: Path) -> Case:
    # 4 pages: the filler takes 2, the sidecar 1, the results 1 (~12 of the 16 rows)
    kept = tmp / "kept.jsonl"

    def check() -> None:
        _complete_rows(kept, _ids(ws))()
        assert 0 < len(read_results(kept)) < 16, "the disk must fill up mid-job"

    return Case(
        _label(ws, tmp / "mnt" / "labels.jsonl"),
        exit_status.SYSTEM,
        "labels.jsonl: No space left on device",
        tmpfs="size=16k",
        fill=8192,
        check=check,
    )


def case_file_size_limit(ws: Workspace, tmp: Path) -> Case:
    # the same refusal mid-job as a full disk, where no tmpfs can be mounted: RLIMIT_FSIZE
    out = tmp / "labels.jsonl"
    return Case(
        _label(ws, out),
        exit_status.SYSTEM,
        "labels.jsonl: File too large",
        file_size_limit=2000,
        check=_complete_rows(out, _ids(ws)),
    )


def case_malformed_line(ws: Workspace, tmp: Path) -> Case:
    out = _copy_labels(ws, tmp)
    lines = out.read_bytes().splitlines(keepends=True)
    lines[4] = b'{"id": "half a row\n'
    out.write_bytes(b"".join(lines))
    return Case(
        _label(ws, out),
        exit_status.USAGE,
        "labels.jsonl:5: malformed result line",
        check=_unchanged(out),
    )


def case_foreign_results(ws: Workspace, tmp: Path) -> Case:
    out = tmp / "labels.jsonl"  # another job's rows and no sidecar to say so
    rows = [{**r, "id": f"other/{r['id']}"} for r in read_results(ws.labels)]
    out.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return Case(
        _label(ws, out),
        exit_status.USAGE,
        "are not among this job's 16 inputs",
        check=_unchanged(out),
    )


def case_foreign_sidecar(ws: Workspace, tmp: Path) -> Case:
    out = _copy_labels(ws, tmp)
    sidecar = json.loads(meta_path(out).read_text(encoding="utf-8"))
    meta_path(out).write_text(json.dumps({**sidecar, "input": "/data/other.jsonl"}))
    return Case(
        _label(ws, out),
        exit_status.USAGE,
        "belongs to another job",
        check=_unchanged(out),
    )


def case_unknown_backbone(ws: Workspace, tmp: Path) -> Case:
    return Case(
        _label(ws, tmp / "labels.jsonl", "model.glance_backbone=resnet9000"),
        exit_status.USAGE,
        "model.glance_backbone: unknown backbone 'resnet9000'",
    )


def case_non_utf8_manifest(ws: Workspace, tmp: Path) -> Case:
    manifest = tmp / "manifest.jsonl"
    lines = ws.manifest.read_bytes().splitlines(keepends=True)
    lines[1] = lines[1].replace(b'"id": "', b'"id": "\xff', 1)
    manifest.write_bytes(b"".join(lines))
    return Case(
        _label(ws, tmp / "labels.jsonl", source=manifest),
        exit_status.USAGE,
        "manifest.jsonl:2: not UTF-8 text",
    )


def case_checkpoint_of_another_config(ws: Workspace, tmp: Path) -> Case:
    return Case(
        _label(ws, tmp / "labels.jsonl", "model.hidden=32"),
        exit_status.USAGE,
        "aggregator.gru.weight_ih_l0 is [48, ",  # the key and both shapes (3 x hidden rows)
        matches=r"is \[48, \d+\] in the checkpoint but \[96, \d+\] in the model",
    )


def case_unknown_probe_backend(ws: Workspace, tmp: Path) -> Case:
    return Case(
        ["probe", str(ws.videos[0]), "--backend", "foo"],
        exit_status.USAGE,
        "--backend: invalid choice: 'foo' (choose from 'auto', 'pyav'",
    )


def case_unknown_policy(ws: Workspace, tmp: Path) -> Case:
    return Case(
        _label(ws, tmp / "labels.jsonl", "--policy", "foo"),
        exit_status.USAGE,
        "--policy: invalid choice: 'foo'",
    )


def case_ctrl_c(ws: Workspace, tmp: Path) -> Case:
    folder = tmp / "many"
    folder.mkdir()
    for i in range(120):
        (folder / f"v{i:03d}.mp4").symlink_to(ws.videos[i % len(ws.videos)])
    out = tmp / "labels.jsonl"
    args = _label(ws, out, source=folder)
    args[args.index("--workers") + 1] = "1"  # a decoding worker gets the Ctrl-C too
    return Case(
        args,
        exit_status.INTERRUPTED,
        "label: interrupted; rerun the same command to resume",
        interrupt_after_rows=8,
        check=_complete_rows(out, {f"v{i:03d}.mp4" for i in range(120)}),
    )


CASES = {
    name.removeprefix("case_"): fn
    for name, fn in sorted(globals().items())
    if name.startswith("case_") and callable(fn)
}


def _child_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONWARNINGS", "VIDEOFOCUS_DEBUG")}
    env["PYTHONUNBUFFERED"] = "1"
    return env


def _run(case: Case, tmp: Path) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "videofocus.cli", *case.args]
    preexec = None
    if case.tmpfs is not None:
        mnt = tmp / "mnt"
        mnt.mkdir()
        script = ["sh", "-c", _IN_TMPFS, "sh", str(mnt), case.tmpfs, str(case.fill)]
        cmd = ["unshare", "-rm", *script, str(tmp / "kept.jsonl"), *cmd]
    env = _child_env()
    if case.file_size_limit is not None:
        limit = case.file_size_limit

        def preexec() -> None:
            resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    if case.interrupt_after_rows is None:
        lock = ResultWriter(case.hold_lock) if case.hold_lock is not None else None
        try:
            return subprocess.run(
                cmd,
                capture_output=True,
                text=True,
                timeout=TIMEOUT,
                env=env,
                preexec_fn=preexec,
            )
        finally:
            if lock is not None:
                lock.close()
    # Ctrl-C reaches the whole foreground process group: the job and its decoding workers
    out = Path(case.args[case.args.index("--out") + 1])
    proc = subprocess.Popen(
        cmd,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        start_new_session=True,
        # as a terminal's foreground job: a suite started in the background (`cmd &` in a
        # script) passes SIGINT down ignored, and the job would never see the Ctrl-C
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    deadline = time.monotonic() + TIMEOUT
    while not (out.is_file() and out.read_bytes().count(b"\n") >= case.interrupt_after_rows):
        assert proc.poll() is None, f"the job ended before Ctrl-C: {proc.communicate()}"
        assert time.monotonic() < deadline, "the job wrote no rows"
        time.sleep(0.005)
    os.killpg(proc.pid, signal.SIGINT)
    stdout, stderr = proc.communicate(timeout=TIMEOUT)
    return subprocess.CompletedProcess(cmd, proc.returncode, stdout, stderr)


@pytest.mark.slow
@pytest.mark.parametrize("name", list(CASES))
def test_a_failure_is_one_line_and_its_exit_status(name, workspace, tmp_path, can_mount):
    case = CASES[name](workspace, tmp_path)
    if case.tmpfs is not None and not can_mount:
        pytest.skip("no private mount namespace here (unshare -rm refused)")
    if case.skip is not None:
        pytest.skip(case.skip)
    done = _run(case, tmp_path)
    lines = done.stderr.splitlines()
    assert "Traceback" not in done.stderr, done.stderr
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith("videofocus: error: ") and case.says in lines[0], lines[0]
    assert re.search(case.matches, lines[0]), lines[0]
    assert done.returncode == case.status, (done.returncode, done.stderr)
    case.check()


def test_debug_adds_the_traceback(workspace, tmp_path):
    case = case_malformed_line(workspace, tmp_path)
    for flag, env in (([], {"VIDEOFOCUS_DEBUG": "1"}), (["--debug"], {})):
        done = subprocess.run(
            [sys.executable, "-m", "videofocus.cli", *flag, *case.args],
            capture_output=True,
            text=True,
            timeout=TIMEOUT,
            env={**_child_env(), **env},
        )
        assert done.returncode == exit_status.USAGE, done.stderr
        assert "Traceback" in done.stderr and "ResultsError" in done.stderr
        assert done.stderr.splitlines()[-1].startswith("videofocus: error: ")


def test_help_documents_every_exit_status():
    text = build_parser().format_help()
    assert "--debug" in text and "VIDEOFOCUS_DEBUG=1" in text
    for status in ("0", "1-100", "2", "101", "102", "130"):
        assert f"\n  {status} " in text, status
