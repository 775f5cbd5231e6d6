"""The shared architecture-family test suite: subclass `FamilyTestSuite` and provide two fixtures.

    class TestMyFamily(FamilyTestSuite):
        input_size, num_classes, in_chans = 32, 10, 3

        @pytest.fixture
        def family(self):
            return get_family("my_cells")

        @pytest.fixture
        def archs(self):
            return [parse_arch(t) for t in MY_TEXTS]   # a few distinct architectures, small ones first

Every family (the block chain, the cells, a user's own) must pass it: canonical text and JSON round
trips, equality by text, fuzzed text refused with a `ValueError` naming the offending token, build
+ forward + backward, analytic parameters and MACs equal to the built module's (when the family
counts analytically), ONNX export run by ONNX Runtime, and `mnas.export` to ONNX and JSON. Only the
first `build_count` architectures are built (builds dominate the time). Imports pytest and, in the
build tests, torch: import this module from tests only.
"""

from __future__ import annotations

import json
import random
import re
from typing import Any

import pytest

from mnas.space.arch import as_arch
from mnas.space.family import ArchFamily, family_of, parse_arch

__all__ = ["FamilyTestSuite"]

_WORD = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_MARK = "zzzbad"


class FamilyTestSuite:
    """Contract tests for an `ArchFamily`; the subclass supplies the `family` and `archs` fixtures."""

    input_size: int = 32
    num_classes: int = 10
    in_chans: int = 3
    build_count: int = 1
    fuzz_cases: int = 200

    # -- text and JSON ----------------------------------------------------------------------
    def test_text_round_trip(self, family: ArchFamily, archs: list[Any]) -> None:
        for a in archs:
            text = str(a)
            assert family.matches(text)
            b = family.parse(text)
            assert b == a and hash(b) == hash(a) and str(b) == text
            assert parse_arch(text) == a and as_arch(text) == a and as_arch(a) is a
            assert family_of(a) is family

    def test_equality_follows_text(self, archs: list[Any]) -> None:
        texts = [str(a) for a in archs]
        assert len(set(texts)) == len(texts), "the fixture's architectures must differ"
        for a, b in zip(archs, archs[1:], strict=False):
            assert a != b and a == as_arch(str(a))
        assert len({*archs, *(as_arch(t) for t in texts)}) == len(archs)

    def test_json_round_trip(self, family: ArchFamily, archs: list[Any]) -> None:
        for a in archs:
            data = json.loads(json.dumps(a.to_dict()))
            assert family.from_dict(data) == a
            assert as_arch(data) == a

    def test_other_families_do_not_claim_the_text(self, family: ArchFamily, archs: list[Any]) -> None:
        from mnas.space.family import families, get_family
        for name in families():
            other = get_family(name)
            if other is not family and other.name != "blocks":  # the block chain is the fallback
                assert not any(other.matches(str(a)) for a in archs), f"{name} claims {family.name}'s text"

    def test_fuzzed_text_raises_only_value_error(self, family: ArchFamily, archs: list[Any]) -> None:
        rng = random.Random(0)
        alphabet = "|~+_,()[]'\" =0123456789abcdefghijklmnopqrstuvwxyz.-"
        for case in range(self.fuzz_cases):
            text = list(str(archs[case % len(archs)]))
            for _ in range(rng.randint(1, 3)):
                i = rng.randrange(len(text) + 1)
                kind = rng.randrange(3)
                if kind == 0 and text:
                    del text[min(i, len(text) - 1)]
                elif kind == 1:
                    text.insert(i, rng.choice(alphabet))
                elif text:
                    text[min(i, len(text) - 1)] = rng.choice(alphabet)
            fuzzed = "".join(text)
            try:
                a = family.parse(fuzzed)
            except ValueError as exc:
                assert str(exc) and "\n" not in str(exc), f"{fuzzed!r}: the message must be one line"
                continue
            assert family.parse(str(a)) == a  # accepted text must still be a valid architecture

    def test_bad_word_is_named(self, family: ArchFamily, archs: list[Any]) -> None:
        for a in archs[:2]:
            text = str(a)
            for m in _WORD.finditer(text):
                bad = text[:m.start()] + _MARK + text[m.end():]
                with pytest.raises(ValueError) as info:
                    family.parse(bad)
                assert _MARK in str(info.value), f"{bad!r}: {info.value}"

    # -- the built module ---------------------------------------------------------------------
    def _built(self, archs: list[Any]) -> list[tuple[Any, Any]]:
        from mnas.models import build_model
        return [(a, build_model(a, num_classes=self.num_classes, in_chans=self.in_chans)) for a in archs[:self.build_count]]

    def test_build_forward_backward(self, archs: list[Any]) -> None:
        import torch

        for a, model in self._built(archs):
            assert model.arch_string == str(a)
            x = torch.randn(2, self.in_chans, self.input_size, self.input_size)
            model.train()
            out = model(x)
            assert out.shape == (2, self.num_classes) and torch.isfinite(out).all()
            loss = out.square().mean()
            aux = getattr(model, "aux_logits", None)  # a training-only head (DARTS's) reports here
            if isinstance(aux, torch.Tensor):
                loss = loss + aux.square().mean()
            loss.backward()
            missing = [n for n, p in model.named_parameters() if p.requires_grad and p.grad is None]
            assert not missing, f"no gradient for {missing[:3]} of '{a}'"
            model.eval()
            with torch.no_grad():
                assert torch.isfinite(model(x)).all()

    def test_analytic_counts_equal_the_built_module(self, family: ArchFamily, archs: list[Any]) -> None:
        from mnas.models import count_macs, count_params
        try:
            family.count(archs[0], self.num_classes, self.in_chans, self.input_size)
        except NotImplementedError:
            pytest.skip(f"family {family.name!r} does not count analytically")
        for a, model in self._built(archs):
            params, macs = family.count(a, self.num_classes, self.in_chans, self.input_size)
            assert params == count_params(model)
            assert macs == count_macs(model, self.input_size, self.in_chans)

    def test_layer_signatures_cover_the_network(self, family: ArchFamily, archs: list[Any]) -> None:
        try:
            units = family.layer_signatures(archs[0], self.input_size, self.num_classes, self.in_chans)
        except NotImplementedError:
            pytest.skip(f"family {family.name!r} does not list its ops")
        assert units and all(isinstance(u.key, str) and u.key for u in units)
        params, macs = family.count(archs[0], self.num_classes, self.in_chans, self.input_size)
        assert sum(u.params for u in units) == params and sum(u.macs for u in units) == macs

    def test_onnx_export_runs_in_onnxruntime(self, archs: list[Any]) -> None:
        ort = pytest.importorskip("onnxruntime")
        import numpy as np
        import torch

        from mnas.latency.export import onnx_bytes, timing_model
        a = archs[0]
        model = timing_model(a, self.input_size, self.num_classes, in_chans=self.in_chans)
        shape = (1, self.in_chans, self.input_size, self.input_size)
        session = ort.InferenceSession(onnx_bytes(model, shape), providers=["CPUExecutionProvider"])
        x = np.random.default_rng(0).standard_normal(shape).astype(np.float32)
        got = session.run(None, {"input": x})[0]
        with torch.no_grad():
            want = model(torch.from_numpy(x)).numpy()
        assert got.shape == (1, self.num_classes)
        np.testing.assert_allclose(got, want, rtol=1e-3, atol=1e-4)

    def test_mnas_export_onnx_and_json(self, archs: list[Any], tmp_path: Any) -> None:
        pytest.importorskip("onnxruntime")
        import mnas

        a = archs[0]
        kw = {"input_size": self.input_size, "num_classes": self.num_classes, "in_chans": self.in_chans}
        result = mnas.export(a, tmp_path / "model.onnx", check=True, **kw)
        assert result.arch == str(a)
        mnas.export(a, tmp_path / "model.json", **kw)
        doc = json.loads((tmp_path / "model.json").read_text())
        assert as_arch(doc["arch"]) == a
