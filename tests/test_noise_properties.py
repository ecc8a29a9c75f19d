"""Property-based checks of NoiseModel construction (issue #12) and its JSON form (issue #13)."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from qboson.circuits import time_bin_interferometer
from qboson.noise import NoiseModel

_junk = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(10**400), max_value=10**400),
    st.floats(allow_nan=True, allow_infinity=True),
    st.complex_numbers(allow_nan=True),
    st.text(max_size=12),
    st.sampled_from([">=3", "2..4", "4..2", ">=-1", "1e400", ">=99999999999999999999", "nan", ""]),
    st.lists(st.floats(allow_nan=True, allow_infinity=True), max_size=5),
    st.lists(st.integers(min_value=-(10**30), max_value=10**30), max_size=5),
    st.dictionaries(st.text(max_size=3), st.integers(), max_size=2),
    st.sets(st.integers(0, 5), max_size=3),
    st.just(object()),
    st.just(np.array([[0.5, 0.5]])),
)

_FIELDS = [
    "transmission", "input_transmission", "output_transmission", "detector_efficiency",
    "indistinguishability", "hom_visibility", "dark_count_probability", "detection", "postselect",
    "min_detected", "angle_noise", "circuit", "max_attempts",
]


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.dictionaries(st.sampled_from(_FIELDS), _junk, max_size=4))
def test_noise_model_construction_never_fails_badly(kwargs):
    # Random, nan, inf, negative, huge values and wrong types: a model or a ValueError/TypeError.
    try:
        model = NoiseModel(**kwargs)
    except (ValueError, TypeError):
        return
    assert 0.0 <= model.transmission <= 1.0 and 0.0 <= model.overlap <= 1.0
    assert math.isfinite(model.angle_noise) and model.angle_noise >= 0
    assert model.detection in ("pnr", "threshold")
    # A model that constructs has a working post-selection rule and JSON form.
    model.accepts(np.arange(5))
    assert NoiseModel.from_dict(json.loads(json.dumps(model.to_dict()))).to_dict() == model.to_dict()


@settings(max_examples=100, deadline=None)
@given(
    st.floats(0, 1), st.floats(0, 1), st.floats(0, 0.5), st.sampled_from(["pnr", "threshold"]),
    st.one_of(st.none(), st.integers(0, 8), st.sampled_from([">=3", "2..4", [1, 5]])),
)
def test_noise_model_json_round_trip(t, v, d, detection, postselect):
    model = NoiseModel(transmission=t, hom_visibility=v, dark_count_probability=d, detection=detection,
                       postselect=postselect, output_transmission=[1.0, t, 0.5])
    again = NoiseModel.from_dict(json.loads(json.dumps(model.to_dict())))
    assert again.to_dict() == model.to_dict()
    assert again.postselection_rule == model.postselection_rule
    np.testing.assert_array_equal(again.accepts(np.arange(10)), model.accepts(np.arange(10)))


def test_noise_model_json_keeps_the_circuit_and_names_bad_keys(tmp_path):
    tbi = time_bin_interferometer(6, (1, 1), seed=2)
    model = NoiseModel(angle_noise=0.05, circuit=tbi, postselect=">=2")
    again = NoiseModel.from_dict(model.to_dict())
    np.testing.assert_allclose(again.circuit.unitary(), tbi.unitary())
    assert again.min_detected == 2 and again.postselect is None
    with pytest.raises(ValueError, match="unknown noise model key"):
        NoiseModel.from_dict({"transmision": 0.5})
    path = tmp_path / "noise.json"
    path.write_text("{not json")
    with pytest.raises(ValueError, match="cannot read noise model"):
        NoiseModel.from_json(path)
    path.write_text(json.dumps({"transmission": 2}))
    with pytest.raises(ValueError, match="noise.json.*transmission"):
        NoiseModel.from_json(path)


def test_postselect_forms():
    assert NoiseModel(postselect=">= 16").min_detected == 16
    assert NoiseModel(min_detected=4).postselection_rule == "at least 4 detected photons"
    assert NoiseModel(postselect="2..4").postselect == (2, 3, 4)
    assert NoiseModel(postselect=range(2, 5)).postselection_rule == "2 to 4 detected photons"
    with pytest.raises(ValueError, match="more detected photons"):
        NoiseModel(postselect=10**12)
    with pytest.raises(ValueError, match="contradicts"):
        NoiseModel(postselect=">=3", min_detected=4)
