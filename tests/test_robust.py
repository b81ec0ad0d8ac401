"""Issue 20's guarantees, unit by unit: writes that own their target, one process per run
folder (two real processes), bounded downloads, model arguments checked from the builder's
signature, the git commit read without running git, a cache folder checked before use."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from igc.errors import IGCError
from igc.files.atomic import atomic_write, check_target, temp_path
from igc.files.lock import LOCK_FILE, FolderLock


# ------------------------------------------------------------------------------ atomic writes
def _device(tmp_path: Path) -> Path:
    if os.geteuid() != 0:
        pytest.skip("making a device node needs root")
    node = tmp_path / "null-device"
    os.mknod(node, 0o666 | stat.S_IFCHR, os.makedev(1, 3))  # our own null device, not /dev's
    return node


@pytest.mark.parametrize("kind, words", [("fifo", "a FIFO"), ("dir", "a folder"),
                                         ("device", "a character device")])
def test_the_atomic_writer_replaces_only_regular_files(tmp_path, kind, words):
    target = tmp_path / "target.onnx"
    if kind == "fifo":
        os.mkfifo(target)
    elif kind == "dir":
        target.mkdir()
    else:
        target = _device(tmp_path)
    mode = target.lstat().st_mode
    with pytest.raises(IGCError, match=words) as info:
        atomic_write(target, b"new")
    assert "\n" not in str(info.value)
    assert target.lstat().st_mode == mode  # still what it was
    assert not temp_path(target).exists()


def test_a_regular_file_or_a_new_path_is_written(tmp_path):
    assert atomic_write(tmp_path / "new.txt", "a").read_text() == "a"
    assert atomic_write(tmp_path / "new.txt", "b").read_text() == "b"
    link = tmp_path / "link.txt"
    link.symlink_to(tmp_path / "nowhere")
    assert check_target(link) == link  # a dangling link is replaced by the file


def test_stale_temporary_files_of_dead_processes_are_removed(tmp_path):
    target = tmp_path / "m.onnx"
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    stale = tmp_path / f".m.onnx.tmp{dead.pid}"
    live = tmp_path / f".m.onnx.tmp{os.getppid()}"  # a running process: kept
    other = tmp_path / f".other.onnx.tmp{dead.pid}"  # another target's: not ours to judge
    for f in (stale, live, other):
        f.write_bytes(b"torn")
    atomic_write(target, b"done")
    assert not stale.exists() and live.exists() and other.exists()


def test_out_files_need_the_formats_suffix(tmp_path):
    from igc.checks import check_writable_file

    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(IGCError, match=r"must end in \.onnx"):
        check_writable_file(tmp_path / "notes.txt", "--out", (".onnx",))
    os.mkfifo(tmp_path / "f.png")
    with pytest.raises(IGCError, match="FIFO"):
        check_writable_file(tmp_path / "f.png", "--out", (".png",))


# ------------------------------------------------------------------------------ folder lock
HOLDER = textwrap.dedent("""
    import sys, time
    from igc.files.lock import FolderLock
    lock = FolderLock(sys.argv[1]).acquire()
    print("held", flush=True)
    time.sleep(600)
""")


def _holder(folder: Path) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    proc = subprocess.Popen([sys.executable, "-c", HOLDER, str(folder)], env=env,
                            stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "held"
    return proc


def test_a_second_process_is_refused_naming_the_holder_and_a_dead_holder_never_blocks(
        tmp_path):
    folder = tmp_path / "run"
    holder = _holder(folder)
    try:
        with pytest.raises(IGCError, match=rf"in use by another igc process \(PID "
                                           rf"{holder.pid}\)") as info:
            FolderLock(folder).acquire()
        assert "\n" not in str(info.value)
    finally:
        holder.kill()  # SIGKILL: no clean-up runs, the kernel drops the flock
        holder.wait()
    assert (folder / LOCK_FILE).exists()  # the dead holder's file is left ...
    with FolderLock(folder) as lock:  # ... and taken over
        assert lock.held and (folder / LOCK_FILE).read_text().strip() == str(os.getpid())
    assert not (folder / LOCK_FILE).exists()


def test_a_lock_removes_the_folder_it_made_unless_kept(tmp_path):
    with FolderLock(tmp_path / "a" / "b"):
        assert (tmp_path / "a" / "b").is_dir()
    assert not (tmp_path / "a").exists()  # made for the run, left empty: removed
    with FolderLock(tmp_path / "c") as lock:
        lock.keep()
    assert (tmp_path / "c").is_dir() and not (tmp_path / "c" / LOCK_FILE).exists()


def test_two_processes_never_both_hold_a_lock(tmp_path):
    """Many processes race for one folder, each holding it briefly: at no time do two hold
    it (each appends its PID on entry and exit; the log must alternate)."""
    script = textwrap.dedent("""
        import os, sys, time
        from igc.errors import IGCError
        from igc.files.lock import FolderLock
        folder, log = sys.argv[1], sys.argv[2]
        end = time.time() + 3
        while time.time() < end:
            try:
                with FolderLock(folder):
                    with open(log, "a") as f:
                        f.write(f"in {os.getpid()}\\n")
                    time.sleep(0.002)
                    with open(log, "a") as f:
                        f.write(f"out {os.getpid()}\\n")
            except IGCError:
                pass
    """)
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    log = tmp_path / "log"
    procs = [subprocess.Popen([sys.executable, "-c", script, str(tmp_path / "f"), str(log)],
                              env=env) for _ in range(4)]
    for p in procs:
        assert p.wait(timeout=60) == 0
    lines = log.read_text().split("\n")[:-1]
    assert len(lines) >= 20
    for enter, leave in zip(lines[::2], lines[1::2], strict=True):
        assert enter.startswith("in ") and leave == "out " + enter[3:], (enter, leave)


def test_train_and_reproduce_are_refused_on_a_held_folder(tmp_path, capsys):
    from igc.cli import main

    folder = tmp_path / "run"
    holder = _holder(folder)
    try:
        for argv in (["train", "--quiet", "--out", str(folder), "--epochs", "1"],
                     ["reproduce", "table2", "--budget", "smoke", "--out", str(folder),
                      "--quiet"]):
            assert main(argv) == 2
            err = capsys.readouterr().err
            assert err.count("\n") == 1 and f"(PID {holder.pid})" in err, err
    finally:
        holder.kill()
        holder.wait()
    assert sorted(p.name for p in folder.iterdir()) == [LOCK_FILE]  # nothing else written


# ------------------------------------------------------------------------------ downloads
def test_downloads_are_capped_in_size(tmp_path):
    import io

    from igc.files.fetch import copy_url

    big = tmp_path / "big.bin"
    big.write_bytes(b"x" * 100_000)
    out = io.BytesIO()
    with pytest.raises(IGCError, match="over the 1,000 expected"):
        copy_url(big.as_uri(), out, 1000)  # announced (Content-Length): refused at once
    assert out.getvalue() == b""
    assert copy_url(big.as_uri(), out, 100_000) == 100_000


def test_a_download_longer_than_its_time_is_stopped(tmp_path):
    import io

    from igc.files.fetch import copy_url

    big = tmp_path / "big.bin"
    big.write_bytes(b"x" * (3 << 20))
    with pytest.raises(IGCError, match="took over 0 s"):
        copy_url(big.as_uri(), io.BytesIO(), 10 << 20, timeout_s=0.0)


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=60))
def test_any_text_is_a_checked_url_or_one_line_of_error(text):
    from igc.files.fetch import SCHEMES, check_url

    try:
        parts = check_url(text)
    except IGCError as exc:
        assert "\n" not in str(exc)
    else:
        assert parts.scheme.lower() in SCHEMES and not any(c.isspace() for c in text)


# ------------------------------------------------------------------------------ model args
@pytest.mark.parametrize("call, words", [
    (lambda m: m.create_model(None), "model name must be a non-empty name"),
    (lambda m: m.list_models(123), "filter must be a pattern"),
    (lambda m: m.list_models(exclude_filters=[None]), "exclude_filters must be"),
    (lambda m: m.create_model("igcv2_c64_d20", width=64.5), "width must be an integer"),
    (lambda m: m.create_model("igcv2_c64_d20", branch_sizes="abc"), "branch_sizes must be"),
    (lambda m: m.create_model("igcv2_c64_d20", branch_sizes=[[2, "x"]]), "branch_sizes must be"),
    (lambda m: m.create_model("igcv2_c64_d20", num_classes=10**9), "at most 100,000"),
    (lambda m: m.create_model("igcv2_c64_d20", in_chans=10**6), "in_chans must be at most"),
    (lambda m: m.create_model("igcv2_c64_d20", in_chans=0), "in_chans must be at least 1"),
    (lambda m: m.create_model("igcv2_c64_d20", depth=True), "depth must be an integer"),
    (lambda m: m.create_model("igcv2_c64_d20", skip=["x"]), "skip must be a non-empty name"),
    (lambda m: m.create_model("igcv2_c64_d20", shuffle_last="yes"), "true or false"),
    (lambda m: m.create_model("igcv2_100", alpha=float("nan")), "finite"),
    (lambda m: m.create_model("igcv2_100", alpha=-1.0), "positive"),
    (lambda m: m.create_model("igcv2_100", groups=[8]), "must have 2 items"),
    (lambda m: m.create_model("igcv2_100", bogus=1), "unknown option 'bogus'"),
    (lambda m: m.create_model("igcv2_c64_d20", nested=[[[[[[1]]]]]]), "short list"),
])
def test_builder_arguments_are_checked_before_anything_is_built(call, words):
    import igc.models as m

    with pytest.raises(IGCError, match=words) as info:
        call(m)
    assert "\n" not in str(info.value)


@settings(max_examples=60, deadline=None)
@given(value=st.one_of(st.integers(-2**70, 2**70), st.floats(allow_nan=True),
                       st.text(max_size=5), st.none(), st.booleans(),
                       st.lists(st.integers(-3, 70), max_size=4)))
def test_any_width_builds_or_is_refused_in_one_line(value):
    """Whatever a file or --set gives as ``width``, the builder either builds or refuses
    with IGCError; nothing else escapes."""
    from igc.models import create_model

    try:
        with __import__("torch").device("meta"):
            create_model("xception_c35_d8", width=value, num_classes=10)
    except IGCError as exc:
        assert "\n" not in str(exc)


# ------------------------------------------------------------------------------ provenance
def _git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True,
                          text=True, env={**os.environ, "GIT_AUTHOR_NAME": "t",
                                          "GIT_AUTHOR_EMAIL": "t@t", "GIT_COMMITTER_NAME": "t",
                                          "GIT_COMMITTER_EMAIL": "t@t"}).stdout.strip()


def test_the_commit_is_read_from_git_files_without_running_git(tmp_path, monkeypatch):
    from igc import provenance

    repo = tmp_path / "repo"
    repo.mkdir()
    _git(repo, "init", "-q", "-b", "main")
    (repo / "a.py").write_text("x = 1\n")
    (repo / "b.py").write_text("y = 2\n")
    _git(repo, "add", ".")
    _git(repo, "commit", "-qm", "one")
    head = _git(repo, "rev-parse", "HEAD")

    def no_process(*args, **kwargs):
        raise AssertionError("a process was started")

    monkeypatch.setattr(subprocess, "Popen", no_process)
    gitdir = provenance.git_dir(repo)
    assert provenance.read_head(gitdir) == head
    assert not provenance.index_dirty(repo, gitdir)
    time.sleep(1.1)  # a new mtime second
    (repo / "a.py").write_text("x = 3\n")
    assert provenance.index_dirty(repo, gitdir)
    (repo / "a.py").write_text("x = 1\n")  # same content, new mtime: clean
    assert not provenance.index_dirty(repo, gitdir)
    monkeypatch.undo()
    _git(repo, "pack-refs", "--all")  # the branch only in packed-refs
    assert not (gitdir / "refs" / "heads" / "main").exists()
    assert provenance.read_head(gitdir) == head
    worktree = tmp_path / "wt"
    _git(repo, "worktree", "add", "-q", "--detach", str(worktree))
    assert provenance.read_head(provenance.git_dir(worktree)) == head  # a .git file
    assert provenance.git_dir(tmp_path) is None


def test_git_commit_starts_no_process(monkeypatch):
    from igc import provenance

    def no_process(*args, **kwargs):
        raise AssertionError("a process was started")

    monkeypatch.setattr(subprocess, "Popen", no_process)
    provenance.git_commit.cache_clear()
    commit = provenance.git_commit()
    assert commit is None or len(commit.removesuffix("+dirty")) in (40, 64)
    provenance.git_commit.cache_clear()


# ------------------------------------------------------------------------------ cache folder
def test_a_cache_folder_that_cannot_be_made_is_named(tmp_path, monkeypatch):
    from igc.files.cache import cache_dir, check_cache_dir

    blocker = tmp_path / "cachefile"
    blocker.write_text("x")
    monkeypatch.setenv("XDG_CACHE_HOME", str(blocker))
    with pytest.raises(IGCError, match=f"cannot make the cache folder {cache_dir()}"):
        check_cache_dir()
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "new" / "cache"))
    assert check_cache_dir() == tmp_path / "new" / "cache" / "igc"
    assert not (tmp_path / "new").exists()  # checked, not made


# ------------------------------------------------------------------------------ augmentation
@pytest.mark.parametrize("spec, size, side", [
    (["pad_crop:4", "hflip", "normalize"], 32, 32), (["scale_crop:64,80,64"], 64, 64),
    (["center_crop:24"], 32, 24), (["normalize"], 28, 28)])
def test_the_augmentation_plan_matches_what_it_makes(spec, size, side):
    import torch

    from igc.data import BatchAugment

    augment = BatchAugment(spec, (0.5,) * 3, (0.25,) * 3)
    h, w, peak = augment.plan(3, size, size)
    out = augment(torch.zeros(2, 3, size, size, dtype=torch.uint8),
                  torch.Generator().manual_seed(0))
    assert out.shape == (2, 3, h, w) and h == side
    assert peak >= out[0].numel() * 4


def test_an_augmentation_too_big_for_memory_names_the_override():
    from igc.data import BatchAugment

    augment = BatchAugment(["pad_crop:99999"], (0.5,), (0.25,))
    with pytest.raises(IGCError, match="IGC_MEMORY_LIMIT_GB"):
        augment.check_batch(128, 1, 28, 8 << 30)
    assert augment.check_batch(128, 1, 28, None) == 28


def test_shards_share_a_folder_that_an_exclusive_holder_may_not(tmp_path):
    """``igc reproduce --shard i/n`` processes share their --out (each run has its own
    lock); an unsharded reproduce or a train is refused while they run, and they while it
    runs."""
    folder = tmp_path / "out"
    busy = "in use by another igc process"
    with FolderLock(folder, shared=True), FolderLock(folder, shared=True), \
            pytest.raises(IGCError, match=busy):
        FolderLock(folder).acquire()
    with FolderLock(folder), pytest.raises(IGCError, match=busy):
        FolderLock(folder, shared=True).acquire()
    assert not (folder / LOCK_FILE).exists()  # the last, exclusive, holder removed it
