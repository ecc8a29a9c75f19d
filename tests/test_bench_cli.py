"""The benchmark scripts' command lines: bad arguments and existing result files are refused
before any timing starts, and results are written as new files only."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest

pytest.importorskip("torch")
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))
result_files = pytest.importorskip("result_files")
bench_molgan = pytest.importorskip("bench_molgan")
bench_molgan_cores = pytest.importorskip("bench_molgan_cores")
host_module = pytest.importorskip("host")
bench_workers = pytest.importorskip("workers")


def _refused(main, argv, capsys) -> str:
    with pytest.raises(SystemExit) as err:
        main(argv)
    assert err.value.code == 2
    return capsys.readouterr().err


@pytest.fixture
def ckpt(tmp_path) -> str:
    path = tmp_path / "checkpoint.pt"
    path.write_bytes(b"not read: the arguments are refused first")
    return str(path)


@pytest.mark.parametrize("flag", ["--json", "--markdown"])
def test_cores_refuses_an_existing_result_file_before_timing(tmp_path, ckpt, capsys, monkeypatch, flag):
    existing = tmp_path / "mine.txt"
    existing.write_text("someone's notes")
    monkeypatch.setattr(bench_molgan_cores, "bench_cores", lambda *a, **k: pytest.fail("timing started"))
    err = _refused(bench_molgan_cores.main, ["--trained", ckpt, flag, str(existing)], capsys)
    assert "exists" in err and flag in err
    assert existing.read_text() == "someone's notes"


@pytest.mark.parametrize("argv, words", [
    (["--stacks", "8,x"], "--stacks"),
    (["--stacks", "0"], "--stacks"),
    (["--precisions", "fp32,fp8"], "fp8"),
    (["--layouts", "procs,gpus"], "--layouts"),
    (["--steps", "0"], "positive"),
    (["--json", "/no/such/folder/x.json"], "no folder"),
])
def test_cores_refuses_bad_arguments(ckpt, capsys, monkeypatch, argv, words):
    monkeypatch.setattr(bench_molgan_cores, "bench_cores", lambda *a, **k: pytest.fail("timing started"))
    assert words in _refused(bench_molgan_cores.main, ["--trained", ckpt, *argv], capsys)


def test_cores_refuses_a_missing_checkpoint(tmp_path, capsys):
    assert "no such file" in _refused(bench_molgan_cores.main, ["--trained", str(tmp_path / "none.pt")], capsys)


def test_cores_writes_new_result_files(tmp_path, ckpt, monkeypatch):
    row = dict(name="setting", procs=2, runs=8, ms_per_update_per_run=25.0, updates_per_s=40.0, speedup=8.0)
    monkeypatch.setattr(bench_molgan_cores, "bench_cores",
                        lambda *a, **k: {"critic_step": 100, "rows": [row]})
    md, js = tmp_path / "table.md", tmp_path / "raw.json"
    assert bench_molgan_cores.main(["--trained", ckpt, "--markdown", str(md), "--json", str(js)]) == 0
    assert "| setting | 16 | 25.0 | 40.00 | 8.00x |" in md.read_text()
    assert '"speedup": 8.0' in js.read_text()
    host = json.loads(js.read_text())["host"]  # the machine is part of the result
    assert host["cpus"] == os.cpu_count() and host["cpu"] and "torch_cpu_capability" in host
    assert host_module.host_line(host) in md.read_text()
    assert sorted(os.listdir(tmp_path)) == ["checkpoint.pt", "raw.json", "table.md"]  # no temporary left


def test_cores_settings_per_layout():
    procs = bench_molgan_cores._settings(2, [8], ["bf16"], ("procs",))
    both = bench_molgan_cores._settings(2, [8], ["bf16"], ("procs", "threads"))
    assert [(s["procs"], s["runs"], s["threads"]) for s in procs[3:]] == [(2, 8, 1)]
    assert [(s["procs"], s["runs"], s["threads"]) for s in both[3:]] == [(2, 8, 1), (1, 16, 2)]
    assert procs[0]["legacy"] and not procs[0]["flush"]  # the baseline comes first


@pytest.mark.parametrize("argv, words", [
    (["--stacks", "4,-1"], "--stacks"),
    (["--stacks", "4", "--precisions", "bf8"], "bf8"),
])
def test_molgan_refuses_bad_arguments(capsys, monkeypatch, argv, words):
    monkeypatch.setattr(bench_molgan, "bench_stacks", lambda *a, **k: pytest.fail("timing started"))
    assert words in _refused(bench_molgan.main, argv, capsys)


def test_molgan_refuses_an_existing_result_file(tmp_path, capsys, monkeypatch):
    existing = tmp_path / "out.json"
    existing.write_text("{}")
    monkeypatch.setattr(bench_molgan, "bench_stacks", lambda *a, **k: pytest.fail("timing started"))
    assert "exists" in _refused(bench_molgan.main, ["--stacks", "4", "--json", str(existing)], capsys)
    assert existing.read_text() == "{}"


def test_write_new_text_never_replaces(tmp_path):
    target = tmp_path / "result.json"
    result_files.write_new_text(str(target), "first")
    with pytest.raises(FileExistsError):
        result_files.write_new_text(str(target), "second")
    assert target.read_text() == "first"
    assert os.listdir(tmp_path) == ["result.json"]


def test_write_new_text_without_hard_links(tmp_path, monkeypatch):
    # regression: the no-clobber step used os.link only, so a file system without hard links lost the result
    def no_links(src, dst):
        raise PermissionError(1, "Operation not permitted")

    monkeypatch.setattr(result_files.os, "link", no_links)
    target = tmp_path / "result.json"
    result_files.write_new_text(str(target), "first")
    assert target.read_text() == "first"
    with pytest.raises(FileExistsError):
        result_files.write_new_text(str(target), "second")
    assert target.read_text() == "first"
    assert os.listdir(tmp_path) == ["result.json"]


def test_check_new_refuses_a_dangling_link(tmp_path):
    link = tmp_path / "link.json"
    link.symlink_to(tmp_path / "elsewhere.json")
    assert "exists" in result_files.check_new(str(link), "--json")
    assert result_files.check_new(str(tmp_path / "fresh.json"), "--json") is None


def test_chem_refuses_an_existing_result_file_before_work(tmp_path, capsys, monkeypatch):
    bench_chem = pytest.importorskip("bench_chem")
    existing = tmp_path / "chem.json"
    existing.write_text("kept")
    monkeypatch.setattr(bench_chem.chem, "load_qm9_graphs", lambda *a, **k: pytest.fail("work started"))
    assert "exists" in _refused(bench_chem.main, ["--json", str(existing)], capsys)
    assert existing.read_text() == "kept"


@pytest.mark.parametrize("native, words", [(True, "bf16 units"), (False, "no bf16 units"), (None, "unknown")])
def test_host_line_names_the_cpu_and_its_bf16_units(native, words):
    host = {"cpu": "Some CPU", "cpus": 2, "torch": "2.13.0", "torch_cpu_capability": "AVX2", "native_bf16": native}
    line = host_module.host_line(host)
    assert line.startswith("Some CPU, 2 CPUs, torch 2.13.0 (AVX2, ") and words in line


def test_cores_stops_the_workers_of_an_interrupted_setting():
    # regression: interrupting the benchmark left its worker processes training, and their load was
    # timed into the first round of the next run
    import multiprocessing as mp
    import time

    ctx = mp.get_context("spawn")
    workers = [ctx.Process(target=time.sleep, args=(120,), daemon=True) for _ in range(2)]
    for w in workers:
        w.start()
    unstarted = ctx.Process(target=time.sleep, args=(0,))
    t0 = time.perf_counter()
    bench_workers.stop_workers([*workers, unstarted])
    assert time.perf_counter() - t0 < 30
    assert all(not w.is_alive() and w.exitcode is not None and w.exitcode < 0 for w in workers)


def _exit_without_result(code: int) -> None:
    raise SystemExit(code)


def test_a_worker_that_dies_without_a_result_ends_the_wait_at_once():
    # regression: bench_molgan_cores waited an hour (queue.get(timeout=3600)) for a worker that had
    # already died, for example of an exception in its training loop
    import multiprocessing as mp
    import time

    ctx = mp.get_context("spawn")
    results = ctx.Queue()
    procs = [ctx.Process(target=_exit_without_result, args=(3,), daemon=True)]
    t0 = time.perf_counter()
    with pytest.raises(RuntimeError, match="exit code 3"):
        bench_workers.run_workers(procs, results, 3600)
    assert time.perf_counter() - t0 < 60
    assert not procs[0].is_alive()
