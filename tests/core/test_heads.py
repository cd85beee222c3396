"""The head registry: one table read by the settings, the scorer, training and the protocol."""

import numpy as np
import pytest

from napari_anomalymatch.core import heads
from napari_anomalymatch.core.config import TrainConfig
from napari_anomalymatch.core.errors import ConfigError
from napari_anomalymatch.core.heads import Head, get_head, head_log_odds, head_names, heads_training, register_head

# name -> (network trained, components averaged, whether a cycle fits the probe)
EXPECTED = {
    "lpft+probe": ("lpft", ("lpft", "probe"), True),
    "lpft": ("lpft", ("lpft",), True),  # the lpft network starts each cycle from the probe
    "classifier": ("classifier", ("classifier",), False),
    "probe": ("classifier", ("probe",), True),
    "ensemble": ("classifier", ("classifier", "probe"), True),
}


def test_the_heads_offered_and_their_order():
    assert head_names() == tuple(EXPECTED)


@pytest.mark.parametrize(("name", "expected"), EXPECTED.items())
def test_each_head_says_what_it_trains_and_reads(name, expected):
    head = get_head(name)
    assert (head.network, head.parts, head.fits_probe) == expected
    assert head.trains_lpft == (expected[0] == "lpft")
    assert TrainConfig(head=name).trains_lpft == head.trains_lpft


def test_heads_by_the_network_they_train():
    assert heads_training("lpft") == ("lpft+probe", "lpft")
    assert heads_training("classifier") == ("classifier", "probe", "ensemble")


def test_an_unknown_head_names_the_known_ones():
    with pytest.raises(ConfigError, match=r"train.head must be one of \['lpft\+probe', 'lpft', .*\]; got 'lfpt'"):
        get_head("lfpt")
    with pytest.raises(ConfigError, match=r"train.head must be one of .*'ensemble'.*got 'lfpt'"):
        TrainConfig(head="lfpt")


def test_a_head_scores_the_mean_of_its_parts_log_odds():
    parts = {"lpft": np.array([1.0, -3.0]), "classifier": np.array([2.0, 0.5]), "probe": np.array([4.0, 1.0])}
    assert head_log_odds(parts, "lpft+probe").tolist() == [2.5, -1.0]
    assert head_log_odds(parts, "ensemble").tolist() == [3.0, 0.75]
    assert head_log_odds(parts, "probe") is parts["probe"]


def test_a_head_registered_in_one_place_is_a_setting(monkeypatch):
    monkeypatch.setattr(heads.HEADS, "_entries", dict(heads.HEADS._entries))
    register_head("probe-only-lpft", "lpft", ("probe",), "the probe, with the lpft network trained beside it")
    assert TrainConfig(head="probe-only-lpft").trains_lpft
    assert "probe-only-lpft" in heads_training("lpft")
    with pytest.raises(ValueError, match="registered already"):
        register_head("probe", "classifier", ("probe",), "again")


@pytest.mark.parametrize(("network", "parts", "message"), [
    ("resnet", ("probe",), "network must be one of"),
    ("classifier", ("lpft",), "parts must be its network 'classifier' and/or 'probe'"),
    ("lpft", (), "parts must be"),
])
def test_a_head_that_cannot_be_scored_is_refused(network, parts, message):
    with pytest.raises(ValueError, match=message):
        Head("new", network, parts, "")
