"""`mnas report`: the files it writes, their content, read-only opening, bad input."""

import json
import re
import struct

import pytest

from mnas.cli import main
from mnas.study import SQLiteStorage, Study

pytest.importorskip("matplotlib")

ARCH = "r1_k3_s11_e1_i8_o8, r1_k3_s22_e3_i8_o16 | s1_h32_d0.0_relu"
CONFIG = {"space": {"class": "mnas.space.mnasnet.MnasNetSpace", "settings": {"input_size": 32, "num_classes": 10}},
          "strategy": "random", "seed": 0, "target_ms": 20.0}


def fill(storage, n=30):
    """n trials: accuracy rises with latency; every 6th fails; one left running."""
    storage.set_meta("config", CONFIG)
    storage.set_meta("target_ms", 20.0)
    for i in range(n):
        number = storage.create_trial([i], ARCH)
        if i % 6 == 5:
            storage.fail_trial(number, f"out of memory <{i}>")  # '<' checks HTML escaping
            continue
        lat = 5.0 + (i * 7919 % 37)
        acc = 0.5 + 0.01 * lat + 0.002 * (i % 5)
        storage.complete_trial(number, acc, lat, acc * (lat / 20.0) ** -0.07, params=10_000 + i,
                               macs=200_000 + i, train_seconds=1.5 * i)
    storage.create_trial([n], ARCH)


@pytest.fixture
def study_path(tmp_path):
    path = tmp_path / "study.db"
    with SQLiteStorage(path) as storage:
        fill(storage)
    return path


def png_size(path):
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR"
    return struct.unpack(">II", data[16:24])


def run(argv, capsys):
    rc = main(argv)
    out, err = capsys.readouterr()
    return rc, out, err


def test_report_writes_plots_and_a_portable_page(study_path, tmp_path, capsys):
    out = tmp_path / "report"
    rc, stdout, _ = run(["report", f"sqlite:///{study_path}", "--out", str(out), "--json", "--top", "10"], capsys)
    assert rc == 0
    info = json.loads(stdout)
    assert (info["n_complete"], info["n_failed"], info["n_running"]) == (25, 5, 1)
    assert info["target_ms"] == 20.0 and info["config"]["strategy"] == "random"
    for key, name in (("pareto", "pareto.png"), ("history", "history.png"), ("html", "index.html")):
        assert info["files"][key] == str(out / name) and (out / name).is_file()
    for name in ("pareto.png", "history.png"):
        width, height = png_size(out / name)
        assert width >= 800 and height >= 400 and (out / name).stat().st_size > 20_000

    page = (out / "index.html").read_text()
    assert page.count("data:image/png;base64,") == 2  # one file: images embedded
    assert not re.search(r"(src|href)=\"https?:", page)  # nothing fetched from a network
    assert "<script>" in page and "sortable" in page
    assert "out of memory &lt;5&gt;" in page  # failed trials with their reasons, escaped
    assert "&quot;strategy&quot;: &quot;random&quot;" in page  # the search config
    rows = re.findall(r'<tr class="[^"]*"><td class="num" data-v="(\d+)">', page)
    study = Study(SQLiteStorage(study_path, read_only=True))
    ranked = sorted(study.complete_trials, key=lambda t: (-t.reward, t.number))[:10]
    assert [int(n) for n in rows] == [t.number for t in ranked]  # table rows: top 10 by reward, in order
    assert f"{100 * study.best(20.0).accuracy:.2f}%" in page  # best under target in the summary


def test_report_plain_output_and_target_override(study_path, tmp_path, capsys):
    rc, stdout, _ = run(["report", str(study_path), "--out", str(tmp_path / "r"), "--target-ms", "10"], capsys)
    assert rc == 0
    assert "target 10 ms" in stdout and "best under target" in stdout and "index.html" in stdout


def test_report_while_a_search_writes(study_path, tmp_path, capsys):
    writer = SQLiteStorage(study_path)  # the search still holds the study open
    number = writer.create_trial([99], ARCH)
    rc, stdout, _ = run(["report", str(study_path), "--out", str(tmp_path / "r"), "--json"], capsys)
    assert rc == 0 and json.loads(stdout)["n_running"] == 2
    writer.complete_trial(number, 0.9, 10.0, 0.95)  # the report did not lock the writer out
    writer.close()


def test_empty_study_gets_a_page_that_says_so(tmp_path, capsys):
    path = tmp_path / "empty.db"
    SQLiteStorage(path).close()
    out = tmp_path / "r"
    rc, stdout, _ = run(["report", str(path), "--out", str(out), "--json"], capsys)
    assert rc == 0 and json.loads(stdout)["n_complete"] == 0
    assert "no complete trials yet" in (out / "index.html").read_text()
    assert png_size(out / "pareto.png")[0] >= 800 and png_size(out / "history.png")[0] >= 800


@pytest.mark.parametrize("study, needle", [
    ("missing.db", "study not found"),
    ("postgres://host/db", "cannot open study"),
    ("sqlite://", "in-memory"),
])
def test_bad_study_exits_2_with_one_line(study, needle, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    rc, _, err = run(["report", study, "--out", "r"], capsys)
    assert rc == 2 and needle in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "r").exists()


def test_not_a_study_exits_2(tmp_path, capsys):
    path = tmp_path / "notes.db"
    path.write_text("not sqlite")
    rc, _, err = run(["report", str(path), "--out", str(tmp_path / "r")], capsys)
    assert rc == 2 and "notes.db" in err


_DOM_SHIM = """
const rows = ROWS.map(function(r){ return {id: r[0], cells: r.map(function(v, i){
  return i === 1 ? {dataset: {}, textContent: String(v)} : {dataset: {v: v === null ? "" : String(v)}, textContent: ""}; })}; });
const body = {rows: rows, appendChild: function(r){ this.rows.splice(this.rows.indexOf(r), 1); this.rows.push(r); }};
const ths = NUMERIC.map(function(n){ return {dataset: {num: n ? "1" : "0"},
  addEventListener: function(e, f){ this.click = f; }}; });
const table = {tBodies: [body], querySelectorAll: function(){ return ths; }};
const document = {querySelectorAll: function(){ return [table]; }};
"""


def test_inline_js_sorts_the_table(tmp_path):
    """The page's sorting script, run by node against a minimal stand-in for the DOM."""
    import shutil
    import subprocess

    from mnas.reports.html import _JS

    node = shutil.which("node")
    if node is None:
        pytest.skip("node is not installed")
    rows = [[0, "b", 0.5], [1, "a", None], [2, "c", 0.9], [3, "D", 0.1]]  # number, arch, accuracy
    script = (f"const ROWS = {json.dumps(rows)}; const NUMERIC = [true, false, true];" + _DOM_SHIM + _JS
              + "const order = []; [2, 2, 1].forEach(function(c){ ths[c].click();"
              + " order.push(body.rows.map(function(r){ return r.id; })); }); console.log(JSON.stringify(order));")
    (tmp_path / "sort.js").write_text(script)
    out = subprocess.run([node, str(tmp_path / "sort.js")], capture_output=True, text=True, timeout=60, check=True)
    by_acc_desc, by_acc_asc, by_arch = json.loads(out.stdout)
    assert by_acc_desc == [2, 0, 3, 1]  # numbers descending, the empty cell last
    assert by_acc_asc == [3, 0, 2, 1]  # then ascending, the empty cell still last
    assert by_arch == [1, 0, 2, 3]  # text: first click sorts A-Z, case-insensitive (a, b, c, D)


def test_an_out_that_cannot_be_a_folder_exits_2_with_one_line(study_path, tmp_path, capsys):
    """--out under a file was 'mnas: internal error: NotADirectoryError' and exit 1."""
    rc, _, err = run(["report", str(study_path), "--out", str(study_path / "report")], capsys)
    assert rc == 2 and "cannot make the directory" in err and len(err.strip().splitlines()) == 1, (rc, err)


def test_an_existing_folder_that_cannot_be_written_exits_2_with_one_line(study_path, tmp_path, capsys, monkeypatch):
    """Review: mkdir(exist_ok=True) passes on an existing read-only folder, then writing the report was an internal
    error (PermissionError, exit 1). Root may write anywhere, so the permission is what os.access says."""
    import mnas.cli.report_cmd as report_cmd

    out = tmp_path / "ro"
    out.mkdir()
    real = report_cmd.os.access
    monkeypatch.setattr(report_cmd.os, "access", lambda p, mode: False if str(p) == str(out) else real(p, mode))
    rc, _, err = run(["report", str(study_path), "--out", str(out)], capsys)
    assert rc == 2 and "not writable" in err and len(err.strip().splitlines()) == 1, (rc, err)
    assert not any(out.iterdir())


def test_a_likelihood_best_reads_without_nested_parentheses(tmp_path, capsys):
    # before: 'best reward:       #0 0.3341 (likelihood 0.3341 (top-1 36.84%), 3.13 ms)'
    from mnas.reports.data import brief_score_text

    path = tmp_path / "study.db"
    with SQLiteStorage(path) as storage:
        storage.set_meta("config", CONFIG)
        storage.complete_trial(storage.create_trial([0], ARCH), 0.3341, 3.13, 0.3341,
                               extra={"score_metric": "likelihood", "inherited_accuracy": 0.3684})
    rc, stdout, _ = run(["report", str(path), "--out", str(tmp_path / "r")], capsys)
    assert rc == 0
    assert "#0 0.3341 (likelihood 0.3341, top-1 36.84%, 3.13 ms)" in stdout
    with Study(str(path)) as study:
        assert study.trials[0].score_text() == "likelihood 0.3341, top-1 36.8%"
    assert brief_score_text({"score_metric": "likelihood", "accuracy": 0.3, "top1_accuracy": None}) == "likelihood 0.3000"
