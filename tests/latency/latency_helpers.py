"""Shared helpers for the latency tests (imported by name: pytest puts this folder on sys.path)."""

from __future__ import annotations

from mnas.space import MnasNetSpace, as_arch

TOKEN = "test-token-0123456789"

# Tiny networks at 16x16: a few milliseconds to export, well under one to run.
SMALL = as_arch("r1_k3_s11_e1_i8_o8, r1_k3_s22_e3_i8_o16 | s2_h32_d0.2_relu")
LARGE = as_arch("r2_k5_s11_e6_i32_o64, r2_k5_s11_e6_i64_o96 | s1_h256_d0.2_relu")


def fast_protocol():
    from mnas.latency import Protocol

    return Protocol(warmup=2, warmup_s=0.0, min_repeats=5, max_repeats=15, max_time_s=0.5, min_sample_ms=0.2)


def tiny_space(input_size: int = 16) -> MnasNetSpace:
    """A restricted MnasNet space with a few dozen layer signatures."""
    return MnasNetSpace(10, input_size, ops=("ds", "mbconv3"), kernel_sizes=(3,), se_ratios=(0.0, 0.25),
                        skips=("identity", "none"), filter_mults=(1.0,), layer_deltas=(0,), head_chs=64)


def micro_space(input_size: int = 16) -> MnasNetSpace:
    """Two choices per block (ds or MBConv3): 26 layer signatures, for real (measured) tables."""
    return MnasNetSpace(10, input_size, ops=("ds", "mbconv3"), kernel_sizes=(3,), se_ratios=(0.0,),
                        skips=("none",), filter_mults=(1.0,), layer_deltas=(0,), head_chs=64)
