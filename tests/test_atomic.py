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
