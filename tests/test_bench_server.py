"""The benchmarks' server process (benchmarks/common.py ``ServerProcess``, used by the load test
and the llama.cpp explanation job): it waits for the first 200, says why when the server dies
first, and is stopped whatever happens. Python's own http.server stands in for a real server."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
import common  # noqa: E402


def _http_server(tmp_path) -> common.ServerProcess:
    port = common.free_port()
    return common.ServerProcess([sys.executable, "-m", "http.server", str(port), "--bind",
                                 common.HOST, "--directory", str(tmp_path)], port)


def test_waits_for_the_first_200_then_stops(tmp_path):
    (tmp_path / "ready.txt").write_text("yes")
    with _http_server(tmp_path) as server:
        assert server.wait_ready("/ready.txt", timeout=60) > 0
        assert server.proc.poll() is None and server.cpu_s() >= 0
    assert server.proc.returncode is not None  # stopped on leaving the block


def test_a_path_that_never_answers_200_times_out(tmp_path):
    with _http_server(tmp_path) as server:
        with pytest.raises(RuntimeError, match="did not answer /missing within"):
            server.wait_ready("/missing", timeout=3)
    assert server.proc.returncode is not None


def test_a_server_that_dies_is_reported_with_its_output():
    port = common.free_port()
    cmd = [sys.executable, "-c", "import sys; print('no model here'); sys.exit(3)"]
    with common.ServerProcess(cmd, port) as server:
        with pytest.raises(RuntimeError, match=r"exited \(3\): no model here"):
            server.wait_ready("/v1/models", timeout=60)


def test_an_error_inside_the_block_still_stops_the_server(tmp_path):
    with pytest.raises(ValueError):
        with _http_server(tmp_path) as server:
            server.wait_ready("/", timeout=60)
            raise ValueError("the benchmark failed")
    assert server.proc.returncode is not None
