"""The sandbox's parts, one at a time: clean-up, the root's allow-list, the protections table,
keyrings, cgroups and the scratch tmpfs (the last three need root)."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest

import cnnlab
from cnnlab.exercises import cgroups, keyrings, protections, rootfs
from cnnlab.exercises.removal import remove_tree
from cnnlab.exercises.scratch import make_scratch
from cnnlab.exercises.spec import load_exercise

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = os.path.dirname(cnnlab.__file__)
needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="needs root")


def _deep_tree(top: Path, depth: int) -> None:
    fd = os.open(top, os.O_RDONLY)
    middle = None
    for level in range(depth):
        os.mkdir("d", dir_fd=fd)
        child = os.open("d", os.O_RDONLY, dir_fd=fd)
        os.close(fd)
        fd = child
        if level % 500 == 0:
            os.symlink("/", "root_link", dir_fd=fd)
            os.symlink(str(top.parent / "sentinel"), "sentinel_link", dir_fd=fd)
            os.mkfifo("fifo", dir_fd=fd)
            with open(os.open("file", os.O_WRONLY | os.O_CREAT, 0o600, dir_fd=fd), "w") as f:
                f.write("x")
        if level == depth // 2:
            middle = os.dup(fd)
    os.chmod(fd, 0)
    os.chmod(middle, 0o500)
    os.close(fd)
    os.close(middle)


def test_remove_tree_survives_what_a_submission_leaves(tmp_path):
    (tmp_path / "sentinel").write_text("keep me")
    top = tmp_path / "scratch"
    top.mkdir()
    _deep_tree(top, 3000)
    os.symlink(tmp_path / "sentinel", top / "link_to_outside")
    assert remove_tree(top) is True
    assert not top.exists()
    assert (tmp_path / "sentinel").read_text() == "keep me"  # links removed, never followed


def test_remove_tree_removes_a_link_not_its_target(tmp_path):
    target = tmp_path / "target"
    target.mkdir()
    (target / "file").write_text("x")
    os.symlink(target, tmp_path / "link")
    assert remove_tree(tmp_path / "link") and (target / "file").exists()
    assert remove_tree(tmp_path / "absent") is True


def test_the_readme_table_lists_every_protection():
    text = (ROOT / "exercises" / "README.md").read_text()
    section = text.split("## How grading isolates a submission", 1)[1]
    rows = re.findall(r"^\| `([a-z_]+)` \|", section, flags=re.MULTILINE)
    assert rows == list(protections.NAMES)


def test_promised_protections_follow_the_mode():
    root, user = protections.promised("root", False), protections.promised("user", False)
    assert {"slot_uid", "cpu_fair_share", "disk_limit", "pids_cgroup"} <= set(root) - set(user)
    assert "user_namespace" in user and "user_namespace" not in root
    assert "network_namespace" not in protections.promised("root", network=True)
    error = protections.IsolationError("root", {"cpu_fair_share": "no cgroup"})
    assert error.missing == ["cpu_fair_share"] and "no cgroup" in str(error)


def test_the_root_allows_python_and_cnnlab_only():
    plan = rootfs.plan_root(PACKAGE, ["cnnlab.numpy", "cnnlab.shapes", "scipy.signal"], 61000)
    bound = plan.read_only
    assert PACKAGE in bound
    for secret in (ROOT, ROOT / ".git", ROOT / "exercises", Path("/root"), Path("/home")):
        assert not any(
            str(secret) == b or str(secret).startswith(b.rstrip("/") + "/") for b in bound
        ), (secret, bound)
    assert not any(b == "/" or str(ROOT).startswith(b.rstrip("/") + "/") for b in bound)
    assert os.path.join(PACKAGE, "numpy") in plan.cover_dirs
    assert os.path.join(PACKAGE, "shapes.py") in plan.cover_files
    assert "/tmp" not in plan.writable  # filled in by the worker from its scratch


def test_forbidden_paths_include_compiled_files(tmp_path):
    package = tmp_path / "pkg"
    (package / "__pycache__").mkdir(parents=True)
    (package / "sub").mkdir()
    for name in ("shapes.py", "shapes_extra.py", "__pycache__/shapes.cpython-311.pyc"):
        (package / name).write_text("")
    dirs, files = rootfs.forbidden_paths(str(package), "pkg", ["pkg.shapes", "pkg.sub", "other"])
    assert dirs == [str(package / "sub")]
    assert files == [
        str(package / "__pycache__" / "shapes.cpython-311.pyc"),
        str(package / "shapes.py"),
    ]


@pytest.mark.parametrize("name", ["01_cross_correlation", "02_shapes"])
def test_exercises_forbid_cnnlab_modules_that_exist(name):
    modules = load_exercise(ROOT / "exercises" / name).forbidden_modules
    dirs, files = rootfs.forbidden_paths(PACKAGE, "cnnlab", list(modules))
    assert dirs and files


@needs_root
def test_scrub_uid_clears_a_slot_uids_keys():
    uid = 63999
    add = (
        "import os, sys; sys.path.insert(0, sys.argv[1]); "
        "from cnnlab.exercises import linux; os.setgid(63999); os.setuid(63999); "
        "print(linux.add_key('user', 'cnnlab-test', b'secret', -4))"
    )
    search = (
        "import ctypes, os, sys; sys.path.insert(0, sys.argv[1]); "
        "from cnnlab.exercises import linux; os.setgid(63999); os.setuid(63999); "
        "lib = ctypes.CDLL(None); lib.syscall.restype = ctypes.c_long; "
        "print(lib.syscall(ctypes.c_long(linux._number('keyctl')), ctypes.c_long(10), "
        "ctypes.c_long(-4), b'user', b'cnnlab-test', ctypes.c_long(0)))"
    )
    run = [sys.executable, "-I", "-S", "-c"]
    serial = int(subprocess.run([*run, add, str(ROOT)], capture_output=True, text=True).stdout)
    assert serial > 0
    found = subprocess.run([*run, search, str(ROOT)], capture_output=True, text=True).stdout
    assert int(found.split()[-1]) == serial  # the key is there, for that uid
    assert keyrings.scrub_uid(uid, str(ROOT))
    found = subprocess.run([*run, search, str(ROOT)], capture_output=True, text=True).stdout
    assert int(found.split()[-1]) == -1  # and gone


@needs_root
def test_a_worker_cgroup_kills_every_process_and_goes():
    group = cgroups.create(f"test-{os.getpid()}", nproc=8)
    if not group.folders:
        pytest.skip(f"no cgroup controller here: {group.errors}")
    sleeper = subprocess.Popen(
        [sys.executable, "-c", "import os, time; os.setsid(); time.sleep(60)"]
    )
    for path in group.procs_files:
        with open(path, "w") as handle:
            handle.write(str(sleeper.pid))
    assert group.pids() == {sleeper.pid}
    if "cpu" in group.folders:
        shares = Path(group.folders["cpu"]) / "cpu.shares"
        assert not shares.exists() or shares.read_text().strip() == "1024"
    assert group.kill()
    assert sleeper.wait(timeout=5) == -signal.SIGKILL
    assert group.remove()
    assert not any(os.path.exists(f) for f in group.folders.values())


@needs_root
def test_the_scratch_tmpfs_bounds_disk_use_and_goes_whole(tmp_path):
    scratch = make_scratch(tmp_path / "scratch", 63998, disk_mb=4)
    try:
        assert scratch.bounded
        assert set(scratch.private) == {"/tmp", "/var/tmp", "/dev/shm", "/run"}
        assert os.stat(scratch.home).st_uid == 63998
        with pytest.raises(OSError) as caught:
            with open(scratch.home / "big", "wb") as handle:
                for _ in range(8):
                    handle.write(b"x" * (1 << 20))
                    handle.flush()
        assert caught.value.errno == 28  # ENOSPC
        (scratch.home / "big").unlink()
        _deep_tree(scratch.home, 500)
    finally:
        assert scratch.discard()
    assert not (tmp_path / "scratch").exists()
    with open("/proc/self/mountinfo") as handle:
        assert str(tmp_path / "scratch") not in handle.read()


def test_keyring_helpers_work_in_a_child():
    # A new session keyring and cleared uid keyrings, in a throwaway process of our own uid.
    code = (
        "import sys; sys.path.insert(0, sys.argv[1]); "
        "from cnnlab.exercises import keyrings; "
        "print(keyrings.join_new_session_keyring() > 0, keyrings.clear_uid_keyrings())"
    )
    done = subprocess.run(
        [sys.executable, "-I", "-S", "-c", code, str(ROOT)],
        capture_output=True,
        text=True,
        timeout=30,
    )
    if done.returncode and "Operation not permitted" in done.stderr:
        pytest.skip("keyctl refused here (seccomp)")
    assert done.stdout.startswith("True"), done.stderr
    assert "user" in done.stdout


def test_remove_tree_holds_two_descriptors_at_most(tmp_path):
    top = tmp_path / "t"
    top.mkdir()
    _deep_tree(top, 1000)
    before = len(os.listdir("/proc/self/fd"))
    assert remove_tree(top)
    assert len(os.listdir("/proc/self/fd")) == before
