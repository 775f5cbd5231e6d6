"""`mnas search` refuses options that cannot work in one line (exit 2) before it loads the data and
measures the target: a study path that is a folder or cannot be written, a non-finite --alpha/--beta.
Before these checks each was refused only after the data and the target's reference had been measured
(minutes on a busy machine), with 'unable to open database file' for a folder."""

from __future__ import annotations

import os

import pytest
from _cli_helpers import one_line, run_cli

import mnas.train


@pytest.fixture
def no_data(monkeypatch):
    def load(*args, **kwargs):
        raise AssertionError("the data was loaded before the bad option was refused")

    monkeypatch.setattr(mnas.train, "load", load)


@pytest.mark.usefixtures("no_data")
def test_a_storage_folder_is_refused_before_the_data_is_loaded(tmp_path, capsys):
    code, _, err = run_cli(capsys, "search", "--trials", "1", "--storage", str(tmp_path))
    one_line(code, err, "is a folder")


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes in a read-only folder")
@pytest.mark.usefixtures("no_data")
def test_a_storage_in_a_read_only_folder_is_refused_before_the_data_is_loaded(tmp_path, capsys):
    folder = tmp_path / "ro"
    folder.mkdir()
    folder.chmod(0o500)
    try:
        code, _, err = run_cli(capsys, "search", "--trials", "1", "--storage", str(folder / "s.db"))
    finally:
        folder.chmod(0o700)
    one_line(code, err, "cannot write in")


@pytest.mark.usefixtures("no_data")
@pytest.mark.parametrize("alpha, beta", [("nan", "nan"), ("-0.07", "inf")])
def test_a_non_finite_alpha_or_beta_is_refused_before_the_data_is_loaded(tmp_path, capsys, alpha, beta):
    code, _, err = run_cli(capsys, "search", "--trials", "1", "--storage", str(tmp_path / "s.db"),
                           f"--alpha={alpha}", f"--beta={beta}")
    one_line(code, err, "--alpha")
    assert not (tmp_path / "s.db").exists()


@pytest.mark.usefixtures("no_data")
def test_a_storage_that_is_not_a_study_is_refused_and_kept(tmp_path, capsys):
    notes = tmp_path / "notes.json"
    notes.write_text('{"mine": 1}')
    code, _, err = run_cli(capsys, "search", "--trials", "1", "--storage", str(notes))
    one_line(code, err, "is not a study")
    assert notes.read_text() == '{"mine": 1}'


@pytest.mark.usefixtures("no_data")
@pytest.mark.parametrize("url", ["", "  "])
def test_an_empty_url_is_refused_not_taken_for_this_machine(tmp_path, capsys, url):
    """`--url "$DEVICE_URL"` with the variable unset searched with this CPU's latency, silently."""
    code, _, err = run_cli(capsys, "search", "--trials", "1", "--storage", str(tmp_path / "s.db"), "--url", url,
                           "--token", "t")
    one_line(code, err, "--url is empty")


@pytest.mark.usefixtures("no_data")
@pytest.mark.parametrize("command", [("search",), ("latency", "build-lut", "--out", "t.json")])
def test_an_empty_skeleton_is_refused_not_taken_for_mobilenetv2(tmp_path, capsys, command):
    """`--space layerwise --skeleton ''` searched MobileNetV2's stages, silently."""
    code, _, err = run_cli(capsys, *command, "--space", "layerwise", "--skeleton", " ")
    one_line(code, err, "empty skeleton")


def test_a_lut_that_is_a_folder_is_named_a_folder_not_missing(tmp_path, capsys):
    code, _, err = run_cli(capsys, "search", "--data", "digits", "--lut", str(tmp_path), "--trials", "1",
                           "--storage", str(tmp_path / "s.db"))
    one_line(code, err, "is a folder, not a lookup table")
    code, _, err = run_cli(capsys, "latency", "validate", "--lut", str(tmp_path))
    assert code == 2 and "not found" not in err


@pytest.mark.usefixtures("no_data")
@pytest.mark.parametrize("target", ["-3ms", "-3", "-0.5", "0ms", "1e-9ms", "fast!"])
def test_a_negative_or_garbage_target_is_refused_in_one_line_that_says_what_a_target_is(tmp_path, capsys, target):
    """`--target -3ms` was taken by argparse for an unknown option ("expected one argument"), and '0ms' or '-3'
    were refused only after the storage was checked, in Target's own words."""
    code, _, err = run_cli(capsys, "search", "--target", target, "--trials", "1", "--storage", str(tmp_path / "s.db"))
    one_line(code, err, "--target: must be a positive latency such as 3ms")
    assert repr(target) in err and "reference model name" in err
    assert not (tmp_path / "s.db").exists()


@pytest.mark.usefixtures("no_data")
def test_a_target_naming_no_zoo_model_is_refused_with_the_nearest_name(tmp_path, capsys):
    code, _, err = run_cli(capsys, "search", "--target", "0.8x mobilenetv3", "--storage", str(tmp_path / "s.db"))
    one_line(code, err, "did you mean '0.8x mobilenetv2'?")  # the whole target, ready to paste


@pytest.mark.parametrize("command", [("export", "s.db", "--best-under-target"), ("report", "s.db"),
                                     ("instance", "eval", "DIR", "--budget-ms")])
def test_the_other_latency_options_refuse_a_negative_latency_by_their_own_type(capsys, command):
    """`--target-ms -3ms` (and `--budget-ms -3ms`) failed with argparse's "expected one argument" too."""
    flag = () if command[-1].startswith("--budget") else ("--target-ms",)
    code, _, err = run_cli(capsys, *command, *flag, "-3ms")
    one_line(code, err, "expected a positive number, got '-3ms'")


@pytest.mark.usefixtures("no_data")
@pytest.mark.parametrize("argv, words", [
    (("search", "--space", "nb201", "--skeleton", "mnasnet_b1"), "--skeleton mnasnet_b1 does not apply to --space nb201"),
    (("search", "--space", "darts", "--width-mult", "0.5"), "--width-mult: block-space options do not apply to --space darts"),
    (("search", "--space", "nb201", "--cell-layers", "4"), "--cell-layers is for --space darts"),
    (("search", "--space", "nb201", "--strategy", "fbnet", "--skeleton", "mnasnet_b1"), "does not apply to --space nb201"),
    (("supernet", "train", "--space", "nbmacro", "--head", "64"), "--space nbmacro is NAS-Bench-Macro's fixed space"),
    (("latency", "build-lut", "--out", "t.json", "--space", "nb201", "--skeleton", "mnasnet_b1"),
     "does not apply to --space nb201"),
])
def test_an_option_the_space_does_not_take_is_named_before_a_missing_option(tmp_path, capsys, argv, words):
    """`mnas search --space nb201 --skeleton X` said --target was missing (the space options were checked only
    as the space was built, after the data was loaded); `supernet train` said --data was missing, and build-lut
    loaded the data first."""
    code, _, err = run_cli(capsys, *argv, *(("--out", str(tmp_path / "sn.pt")) if argv[0] == "supernet" else ()),
                           *(("--storage", str(tmp_path / "s.db")) if argv[0] == "search" else ()))
    one_line(code, err, words)
    assert "--target" not in err and "--data" not in err and "--lut" not in err
