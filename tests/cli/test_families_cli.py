"""The CLI with every architecture family: arch show, ARCH as JSON, train's stride log, --space, build-lut/validate."""

import argparse
import json

import pytest

from mnas.cli import main
from mnas.cli._common import UsageError, resolve_arch, space_from_args
from mnas.space import DARTS_V2, DartsSpace, LayerwiseSpace, MnasNetSpace, NB201Cell, NB201Space, as_arch, get_family

NB201 = "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|skip_connect~0|nor_conv_3x3~1|nor_conv_3x3~2|"
TINY_NB201 = "|nor_conv_3x3~0|+|skip_connect~0|nor_conv_1x1~1|+|none~0|avg_pool_3x3~1|nor_conv_3x3~2| | c4_n1"


def test_arch_show_takes_an_nb201_cell(capsys):
    # regression: arch show read arch.blocks and failed with "internal error: AttributeError"
    assert main(["arch", "show", NB201, "--num-classes", "10", "--input-size", "32", "--json"]) == 0
    row = json.loads(capsys.readouterr().out)
    assert row["params"] == 1_288_506  # NAS-Bench-201's count for this cell at CIFAR-10
    assert (row["params"], row["macs"]) == get_family("nb201").count(as_arch(NB201), 10, 3, 32)
    assert row["family"] == "nb201" and "blocks" not in row and row["arch"] == NB201
    assert main(["arch", "show", NB201, "--num-classes", "10", "--input-size", "32"]) == 0
    out = capsys.readouterr().out
    assert "params:  1,288,506" in out and "family:  nb201" in out and "blocks" not in out


def test_arch_show_takes_a_darts_genotype_and_still_lists_blocks(capsys):
    assert main(["arch", "show", str(DARTS_V2), "--num-classes", "10", "--input-size", "32", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["family"] == "darts"
    assert main(["arch", "show", "mnasnet_small", "--input-size", "32", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["blocks"]


def test_a_json_file_without_an_arch_key_is_read_by_its_family(tmp_path):
    # regression: such a file went to Arch.from_dict, which refused the NB201 dict
    path = tmp_path / "cell.json"
    ops = ["none", "skip_connect", "nor_conv_1x1", "nor_conv_3x3", "avg_pool_3x3", "none"]
    path.write_text(json.dumps({"family": "nb201", "ops": ops}))
    arch = resolve_arch(str(path))
    assert isinstance(arch, NB201Cell) and list(arch.ops) == ops
    path.write_text(json.dumps(as_arch("r1_k3_s11_e1_i32_o16_noskip").to_dict()))
    assert str(resolve_arch(str(path))).startswith("r1_k3_s11_e1_i32_o16")


def _space_args(**kw) -> argparse.Namespace:
    base = dict(space=None, input_size=None, width_mult=None, head=None, strides=None, cell_channels=None,
                cells_per_stage=None, cell_layers=None)
    return argparse.Namespace(**{**base, **kw})


def test_space_options_build_each_space_and_the_default_is_unchanged():
    default = space_from_args(_space_args(), 10, 32)
    assert isinstance(default, MnasNetSpace) and default.settings() == MnasNetSpace(10, 32).settings()
    assert isinstance(space_from_args(_space_args(space="layerwise"), 10, 32), LayerwiseSpace)
    nb = space_from_args(_space_args(space="nb201", cell_channels=8, cells_per_stage=2), 10, 32)
    assert isinstance(nb, NB201Space) and (nb.channels, nb.cells_per_stage) == (8, 2)
    darts = space_from_args(_space_args(space="darts", cell_channels=4, cell_layers=5), 10, 32)
    assert isinstance(darts, DartsSpace) and (darts.channels, darts.layers) == (4, 5)


@pytest.mark.parametrize("kw, needle", [
    (dict(space="nb201", width_mult=0.5), "--width-mult"),
    (dict(space="nb201", cell_layers=3), "--cell-layers"),
    (dict(space="darts", cells_per_stage=3), "--cells-per-stage"),
    (dict(cell_channels=8), "cell-space option"),
    (dict(space="nb201", input_size=30), "multiple of 4"),
])
def test_space_options_that_do_not_fit_are_refused(kw, needle):
    with pytest.raises(UsageError, match=needle):
        space_from_args(_space_args(**kw), 10, 32)


def test_search_on_a_cell_space_needs_a_target(capsys, tmp_path):
    code = main(["search", "--space", "nb201", "--data", "digits", "--trials", "1", "--storage", str(tmp_path / "s.db")])
    err = capsys.readouterr().err
    assert code == 2 and "--target" in err and len(err.strip().splitlines()) == 1


@pytest.mark.slow  # a real (two-step) proxy run: about 10-30 s on a shared core
def test_train_logs_strides_only_for_block_chains(capsys, tmp_path):
    # regression: train read arch.blocks for the stride log and failed on a cell
    code = main(["train", TINY_NB201, "--data", "digits", "--proxy", "--steps", "2", "--out", str(tmp_path / "run"),
                 "--json"])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    assert "strides:" not in captured.err


def test_build_lut_and_validate_on_nb201(capsys, tmp_path):
    out = str(tmp_path / "nb201.json")
    assert main(["latency", "build-lut", "--space", "nb201", "--cell-channels", "2", "--cells-per-stage", "1",
                 "--input-size", "8", "--num-classes", "10", "--in-chans", "1", "--out", out, "--fit-archs", "2",
                 "--repeats", "3", "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["entries"] == 19 and summary["space"]["channels"] == 2
    assert main(["latency", "validate", "--lut", out, "--n", "3", "--repeats", "3", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["n"] == 3 and all(r["arch"].startswith("|") for r in report["rows"])
    assert main(["latency", "build-lut", "--space", "nb201", "--input-size", "8", "--num-classes", "10", "--in-chans",
                 "1", "--out", str(tmp_path / "x.json"), "--references", "mnasnet_a1"]) == 2
