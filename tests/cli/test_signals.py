"""SIGTERM and SIGINT (issue 18): from the moment circuitdsl's code runs, either signal at any point
ends the process with 143 / 130 and one line on stderr, and leaves no temporary file beside an output
and no spill directory; a spill directory left by a killed process (SIGKILL) is removed by the next
run. Each case runs in a fresh process."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from .conftest import tiny_circuit

pytestmark = pytest.mark.engine

LINES = {signal.SIGTERM: "circuitdsl: terminated (SIGTERM); no file was left half-written",
         signal.SIGINT: "circuitdsl: interrupted (SIGINT); no file was left half-written"}  # fmt: skip


def _spawn(args: list[str], cwd: Path, spill: Path) -> subprocess.Popen:
    env = {
        **os.environ,
        "OMP_NUM_THREADS": "1",
        "CIRCUITDSL_SPILL_DIR": str(spill),
        "CIRCUITDSL_CACHE": str(cwd / "cache"),
    }
    return subprocess.Popen([sys.executable, "-m", "circuitdsl", *args], cwd=cwd, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)  # fmt: skip


def _handlers_installed(pid: int, timeout: float = 120) -> bool:
    """True once the process catches SIGTERM (Python itself never does: circuitdsl's handler is in)."""
    end = time.time() + timeout
    while time.time() < end:
        try:
            status = Path(f"/proc/{pid}/status").read_text()
        except OSError:
            return False
        caught = int(next(line.split()[1] for line in status.splitlines() if line.startswith("SigCgt:")), 16)
        if caught & (1 << (signal.SIGTERM - 1)):
            return True
        time.sleep(0.001)
    return False


def _wait_for(p: subprocess.Popen, text: str, timeout: float = 300) -> bytes:
    """Read stderr until `text` appears (the engine's progress lines); what was read."""
    buf = b""
    end = time.time() + timeout
    while text.encode() not in buf and time.time() < end:
        line = p.stderr.readline()
        if not line:
            break
        buf += line
    return buf


def _project(tmp_path: Path) -> tuple[Path, Path, Path]:
    f = tmp_path / "h.circuit"
    f.write_text(tiny_circuit(n=256))
    out = tmp_path / "out"
    out.mkdir()
    (out / "r.json").write_text("previous")
    spill = tmp_path / "spill"
    spill.mkdir()
    return f, out, spill


def _assert_clean_stop(p: subprocess.Popen, sig: int, before: bytes, out: Path, spill: Path) -> None:
    rest, err = p.communicate(timeout=600)
    err = (before + err).decode()
    assert p.returncode == 128 + sig, err
    assert err.strip().splitlines()[-1] == LINES[sig] and err.count("circuitdsl: ") == 1, err
    assert "Traceback" not in err
    assert sorted(os.listdir(out)) == ["r.json"] and (out / "r.json").read_text() == "previous"  # no .tmp, untouched
    assert os.listdir(spill) == []  # the spill directory went with the process


@pytest.mark.parametrize("sig, phase", [
    (signal.SIGTERM, "loading model"), (signal.SIGINT, "scrubbing the hypothesis"), (signal.SIGTERM, "minimality"),
])  # fmt: skip
def test_a_signal_during_check_stops_it_cleanly(tmp_path, sig, phase):
    f, out, spill = _project(tmp_path)
    p = _spawn(["check", str(f), "--clean-cache", "0", "--json-out", str(out / "r.json"), "--html", str(out / "r.html")],
               tmp_path, spill)  # fmt: skip
    before = _wait_for(p, phase)
    if phase != "loading model":
        time.sleep(0.3)
        assert any(spill.iterdir()), "the check spills its clean activations (--clean-cache 0)"
    p.send_signal(sig)
    _assert_clean_stop(p, sig, before, out, spill)


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_a_signal_as_soon_as_circuitdsl_runs_is_one_line_not_a_traceback(tmp_path, sig):
    f = tmp_path / "h.circuit"
    f.write_text("model tiny\n" + "edge embed -> a1.0 -> out\n" * 2000)
    p = _spawn(["lint", str(f)], tmp_path, tmp_path)
    assert _handlers_installed(p.pid)
    p.send_signal(sig)
    out, err = p.communicate(timeout=300)
    assert p.returncode == 128 + sig and err.decode().strip() == LINES[sig]


def test_fmt_interrupted_leaves_the_file_whole_and_no_temporary_file(tmp_path):
    f = tmp_path / "big.circuit"
    text = "model   tiny\n" + "".join(f"edge  embed ->  a{i % 2}.{i % 4}   # {i}\n" for i in range(6000))
    from circuitdsl.fmt import format_source

    formatted = format_source(text)
    for delay in (0.0, 0.2, 0.6, 1.5):
        f.write_text(text)
        p = _spawn(["fmt", str(f)], tmp_path, tmp_path)
        assert _handlers_installed(p.pid)
        time.sleep(delay)
        p.send_signal(signal.SIGTERM)
        p.communicate(timeout=300)
        assert p.returncode in (0, 143)
        assert os.listdir(tmp_path) == ["big.circuit"]
        assert f.read_text() in (text, formatted)  # never half-written


def test_a_spill_directory_left_by_a_killed_process_is_removed_by_the_next_run(tmp_path):
    from circuitdsl.engine.spill import SpillDir, sweep_stale

    f, out, spill = _project(tmp_path)
    p = _spawn(["check", str(f), "--clean-cache", "0"], tmp_path, spill)
    _wait_for(p, "scrubbing the hypothesis")
    time.sleep(0.3)
    p.kill()  # SIGKILL: no handler, no cleanup
    p.communicate(timeout=300)
    (left,) = spill.iterdir()
    assert any(x.suffix == ".bin" for x in left.iterdir())
    nxt = _spawn(["check", str(tmp_path / "no_such.circuit")], tmp_path, spill)  # the next run, even one that fails
    nxt.communicate(timeout=300)
    assert nxt.returncode == 2 and list(spill.iterdir()) == []
    assert sweep_stale(spill) == []
    mine = SpillDir(spill)  # a live process's directory is never taken for a leftover
    assert sweep_stale(spill) == [] and list(spill.iterdir()) == [mine.path]
    mine.close()
    assert list(spill.iterdir()) == []
