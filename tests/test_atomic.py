"""Atomic writes: the old file survives a failed write, no temporary file is left behind."""

import os

import pytest

from circuitdsl.atomic import replacing, write_text


def test_a_failed_write_keeps_the_old_file_and_leaves_no_temp(tmp_path):
    target = tmp_path / "keep.txt"
    target.write_text("the user's text")
    with pytest.raises(RuntimeError), replacing(target) as tmp:
        tmp.write_text("half")
        raise RuntimeError("disk full")
    assert target.read_text() == "the user's text"
    assert os.listdir(tmp_path) == ["keep.txt"]


def test_write_replaces_keeps_mode_and_refuses_missing_folders(tmp_path):
    target = tmp_path / "f.circuit"
    target.write_text("old")
    target.chmod(0o640)
    write_text(target, "new\r\n", keep_mode=True)
    assert target.read_bytes() == b"new\r\n"
    assert target.stat().st_mode & 0o777 == 0o640
    assert os.listdir(tmp_path) == ["f.circuit"]
    with pytest.raises(FileNotFoundError):
        write_text(tmp_path / "missing" / "x.txt", "x")
    write_text(tmp_path / "made" / "x.txt", "x", parents=True)
    assert (tmp_path / "made" / "x.txt").read_text() == "x"


def test_every_write_keeps_an_existing_files_mode_and_new_files_get_the_umask_mode(tmp_path):
    from circuitdsl.atomic import default_mode
    from circuitdsl.results import write_json_atomic

    old = os.umask(0o022)
    try:
        target = tmp_path / "r.json"
        target.write_text("[]")
        target.chmod(0o644)
        write_json_atomic(target, [1])  # no keep_mode argument: every caller keeps the mode
        assert target.stat().st_mode & 0o777 == 0o644
        fresh = tmp_path / "new.json"
        write_json_atomic(fresh, [1])
        assert fresh.stat().st_mode & 0o777 == default_mode() == 0o644  # not mkstemp's 0600
    finally:
        os.umask(old)


def test_a_write_through_a_symlink_replaces_the_target_and_keeps_the_link(tmp_path):
    real = tmp_path / "real" / "h.circuit"
    real.parent.mkdir()
    real.write_text("old")
    real.chmod(0o640)
    link = tmp_path / "link.circuit"
    link.symlink_to(real)
    write_text(link, "new")
    assert link.is_symlink() and os.readlink(link) == str(real)
    assert real.read_text() == "new" and real.stat().st_mode & 0o777 == 0o640
    assert sorted(os.listdir(tmp_path)) == ["link.circuit", "real"]
    assert os.listdir(real.parent) == ["h.circuit"]
