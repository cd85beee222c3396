"""Morphology statistics of single-band cutouts, and the probe that reads them beside the network."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from napari_anomalymatch.core.config import ModelConfig, ProbeConfig, ScoreConfig, TrainConfig
from napari_anomalymatch.core.learning.morphology import MORPHOLOGY_STATISTICS, morphology_statistics
from napari_anomalymatch.core.learning.probe import (
    EXTRA_STATISTIC_LIMIT,
    AnomalyScorer,
    CollectionStatistics,
    LinearProbe,
    collection_statistics,
    probe_input,
)
from napari_anomalymatch.core.learning.training import Trainer
from napari_anomalymatch.core.scoring.run import score_components

from .test_probe import _trained as trained_on_blobs

CPU = torch.device("cpu")
COLUMN = {name: i for i, name in enumerate(MORPHOLOGY_STATISTICS)}


def gaussian(size: int = 64, sigma: tuple[float, float] = (4.0, 4.0), at: tuple[float, float] = (0.0, 0.0),
             peak: float = 1.0) -> torch.Tensor:
    """A 2-D Gaussian ``(size, size)``, ``at`` pixels from the image's centre."""
    yy, xx = torch.meshgrid(torch.arange(size, dtype=torch.float32), torch.arange(size, dtype=torch.float32),
                            indexing="ij")
    centre = (size - 1) / 2
    dy, dx = yy - centre - at[0], xx - centre - at[1]
    return peak * torch.exp(-(dy**2) / (2 * sigma[0] ** 2) - dx**2 / (2 * sigma[1] ** 2))


def stats(*images: torch.Tensor) -> dict[str, np.ndarray]:
    table = morphology_statistics(torch.stack(images)[:, None]).numpy()
    return {name: table[:, i] for name, i in COLUMN.items()}


def test_a_round_centred_source_is_symmetric_and_its_half_light_radius_is_the_gaussians():
    found = stats(gaussian(sigma=(4.0, 4.0)))
    assert found["asymmetry"][0] < 0.01 and found["mirror_asymmetry"][0] < 0.01
    assert found["elongation"][0] == pytest.approx(1.0, abs=0.01)
    assert found["centroid_offset"][0] < 0.01 and found["peak_offset"][0] < 0.2
    # 50 % of a 2-D Gaussian's light lies within sigma * sqrt(2 ln 2); radii are in half-sides (32 px)
    assert found["r50"][0] == pytest.approx(4.0 * np.sqrt(2 * np.log(2)) / 32, abs=1.5 / 32)
    assert found["r20"][0] < found["r50"][0] < found["r80"][0]


def test_elongation_and_size_follow_the_second_moments():
    found = stats(gaussian(sigma=(8.0, 2.0)), gaussian(sigma=(4.0, 4.0)), gaussian(sigma=(8.0, 8.0)))
    assert found["elongation"][0] == pytest.approx(0.25, abs=0.02)
    # rms radius of a round Gaussian: sigma * sqrt(2), over 32 px
    assert found["size"][1] == pytest.approx(4.0 * np.sqrt(2) / 32, abs=0.01)
    assert found["size"][2] > 1.9 * found["size"][1]


def test_an_off_centre_source_is_asymmetric_under_a_half_turn():
    found = stats(gaussian(sigma=(3.0, 3.0), at=(0.0, 16.0)))
    assert found["asymmetry"][0] > 0.95
    assert found["centroid_offset"][0] == pytest.approx(0.5, abs=0.02)


def test_edge_brightened_double_tells_from_a_core_brightened_source():
    # Like a Fanaroff-Riley II (two bright lobes far out) against an FR I (a bright core fading out).
    lobes = gaussian(sigma=(2.5, 2.5), at=(0, -18), peak=1.0) + gaussian(sigma=(2.5, 2.5), at=(0, 18), peak=0.9)
    core = gaussian(sigma=(2.5, 2.5), peak=1.0) + gaussian(sigma=(3.0, 14.0), peak=0.2)
    found = stats(lobes, core)
    assert found["peak_offset"][0] > 0.8 and found["peak_offset"][1] < 0.2
    assert found["m20"][0] > found["m20"][1] + 0.5  # the brightest light sits far from the centroid
    assert found["elongation"][0] < 0.3


def test_one_bright_pixel_has_a_higher_gini_than_spread_light():
    point = torch.zeros(32, 32)
    point[16, 16] = 1.0
    found = stats(point, gaussian(size=32, sigma=(6.0, 6.0)))
    assert found["gini"][0] > 0.99
    assert 0.3 < found["gini"][1] < found["gini"][0]


def test_statistics_ignore_the_background_level_and_the_channel_count():
    source = 0.6 * gaussian(sigma=(3.0, 6.0), at=(5.0, -4.0)) + 0.01 * torch.rand(64, 64)
    plain = morphology_statistics(source[None, None])
    lifted = morphology_statistics((source + 0.3)[None, None])
    coloured = morphology_statistics(source.expand(3, 64, 64)[None])
    torch.testing.assert_close(lifted, plain, atol=1e-4, rtol=1e-3)
    torch.testing.assert_close(coloured, plain)


def test_statistics_do_not_depend_on_the_size_the_images_were_loaded_at():
    at64 = morphology_statistics(gaussian(64, (6.0, 3.0), (4.0, 8.0))[None, None])
    at32 = morphology_statistics(gaussian(32, (3.0, 1.5), (2.0, 4.0))[None, None])
    for name in ("r50", "elongation", "size", "centroid_offset", "asymmetry"):
        assert at32[0, COLUMN[name]] == pytest.approx(float(at64[0, COLUMN[name]]), abs=0.05), name


def test_blank_constant_and_one_pixel_images_give_bounded_statistics():
    point = torch.zeros(1, 16, 16)
    point[0, 5, 9] = 1.0
    found = morphology_statistics(torch.stack([torch.zeros(1, 16, 16), torch.full((1, 16, 16), 0.5), point]))
    assert found.shape == (3, len(MORPHOLOGY_STATISTICS)) and torch.isfinite(found).all()
    assert found.abs().max() <= 9.0  # m20's floor, log10 of 1e-9; before the fix a blank's peak offset was 1e10
    assert found[2, COLUMN["peak_offset"]] == 0.0  # all the light is in the peak: no offset


def _statistics_of(images: torch.Tensor) -> CollectionStatistics:
    class MorphologyOnly(torch.nn.Module):
        def embed(self, batch: torch.Tensor) -> torch.Tensor:
            return torch.cat([torch.ones(len(batch), 2), morphology_statistics(batch)], dim=1)

    return collection_statistics(MorphologyOnly(), images, CPU, sample=len(images), generator=torch.Generator(),
                                 extra_dims=len(MORPHOLOGY_STATISTICS))


def test_a_blank_cutout_neither_sets_the_statistics_scale_nor_dominates_the_probe_input():
    generator = torch.Generator().manual_seed(0)
    sources = torch.stack([gaussian(32, tuple((2 + 6 * torch.rand(2, generator=generator)).tolist()),
                                    tuple((8 * torch.rand(2, generator=generator) - 4).tolist()))
                           for _ in range(40)])[:, None]
    clean = _statistics_of(sources)
    with_blank = _statistics_of(torch.cat([sources, torch.zeros(1, 1, 32, 32)]))
    extra = len(MORPHOLOGY_STATISTICS)
    assert with_blank.extra_limit == pytest.approx(EXTRA_STATISTIC_LIMIT / extra**0.5)
    ratio = with_blank.extra_scale / clean.extra_scale
    assert ((ratio > 0.8) & (ratio < 1.25)).all(), ratio
    blank_image = torch.zeros(1, 1, 32, 32)
    grown = morphology_statistics(torch.cat([sources, blank_image])).std(0) / morphology_statistics(sources).std(0)
    assert grown.max() > 10  # a standard deviation would have grown tenfold (M20's, from the blank's -9)
    blank = torch.cat([torch.ones(1, 2), morphology_statistics(blank_image)], dim=1)
    scaled = (blank - with_blank.centre)[:, 2:] * with_blank.extra_scale
    assert scaled.abs().max() > with_blank.extra_limit  # unbounded, the blank would stand out ...
    bounded = probe_input(blank, with_blank.centre, with_blank.extra_scale, torch.tensor(with_blank.extra_limit))
    joined = torch.cat([torch.zeros(1, 2), scaled.clamp(-with_blank.extra_limit, with_blank.extra_limit)], dim=1)
    torch.testing.assert_close(bounded, F.normalize(joined, dim=-1))  # ... bounded, it is one more image


def test_probe_input_weighs_the_statistics_beside_the_normalised_network_features():
    embedding = torch.tensor([[3.0, 4.0, 10.0, -2.0]])  # two network features, two statistics
    centre = torch.tensor([0.0, 0.0, 8.0, 0.0])
    scale = torch.tensor([0.5, 0.25])
    joined = torch.tensor([[0.6, 0.8, 1.0, -0.5]])
    torch.testing.assert_close(probe_input(embedding, centre, scale), F.normalize(joined, dim=-1))
    torch.testing.assert_close(probe_input(embedding, centre, torch.zeros(0)),
                               F.normalize(embedding - centre, dim=-1))


def _trained(in_chans: int, morphology: str = "auto") -> tuple[Trainer, torch.Tensor, np.ndarray]:
    config = TrainConfig(iterations=2, batch_size=4, unlabelled_ratio=2, seed=3, head="probe")
    return trained_on_blobs(config, in_chans, ProbeConfig(morphology=morphology))


@pytest.fixture(scope="module")
def single_band() -> tuple[Trainer, torch.Tensor, np.ndarray]:
    return _trained(in_chans=1)


def test_single_band_images_get_morphology_by_default_scaled_on_the_unlabelled_images(single_band):
    trainer, images, truth = single_band
    extra = len(MORPHOLOGY_STATISTICS)
    assert trainer.probe_embedder.morphology
    with torch.no_grad():
        embeddings = trainer.probe_embedder.embed(images)
    assert embeddings.shape[1] == trainer._starting_model.embed_pyramid(images[:1]).shape[1] + extra
    torch.testing.assert_close(embeddings[:, -extra:], morphology_statistics(images))
    statistics = embeddings[:, -extra:].double().numpy()  # 60 unlabelled images: fewer than the sample, so all
    network_mean = embeddings[:, :-extra].mean(0)
    torch.testing.assert_close(trainer.probe.centre[:-extra], network_mean, atol=1e-5, rtol=1e-4)
    np.testing.assert_allclose(trainer.probe.centre[-extra:], np.median(statistics, 0), rtol=1e-5, atol=1e-6)
    quartiles = np.percentile(statistics, [25, 75], axis=0)
    expected_scale = 1.349 / ((quartiles[1] - quartiles[0]) * extra**0.5)
    np.testing.assert_allclose(trainer.probe.extra_scale, expected_scale, rtol=1e-4)
    assert float(trainer.probe.extra_limit) == pytest.approx(3 / extra**0.5)
    scores = score_components(trainer.scoring_model, images, ScoreConfig(), CPU)["probe"]
    assert scores[truth].min() > scores[~truth].max()  # rings against blobs: nothing in between


@pytest.mark.parametrize("in_chans, setting, expected", [(3, "auto", False), (3, "on", True), (1, "off", False)])
def test_the_setting_and_the_channel_count_decide_morphology(in_chans, setting, expected):
    trainer, _, _ = _trained(in_chans, setting)
    assert trainer.probe_embedder.morphology is expected
    assert trainer.probe.extra_scale.numel() == (len(MORPHOLOGY_STATISTICS) if expected else 0)


def test_fine_tuned_features_never_get_morphology():
    assert not ProbeConfig(features="fine-tuned", morphology="on").uses_morphology(1)


def test_checkpoint_restores_the_morphology_and_its_scale(single_band):
    trainer, images, _ = single_band
    state = trainer.state_dict()
    assert int(state["probe.frozen_morphology"]) == 1
    restored = Trainer(ModelConfig(image_size=32), TrainConfig(head="probe"), in_chans=1, device=CPU,
                       probe_config=ProbeConfig(morphology="off"))
    restored.load_state_dict(state, trainer.cycle, trainer.iterations_done)
    assert restored.probe_embedder.morphology  # the checkpoint decides, not the new settings
    before = score_components(trainer.scoring_model, images, ScoreConfig(), CPU)
    after = score_components(restored.scoring_model, images, ScoreConfig(), CPU)
    for name in before:
        np.testing.assert_allclose(after[name], before[name], atol=1e-5)


def test_checkpoint_from_before_morphology_reads_the_network_alone():
    trainer, images, _ = _trained(1, "off")
    state = {k: v for k, v in trainer.state_dict().items()
             if k not in ("probe.frozen_morphology", "probe.extra_scale", "probe.extra_limit")}
    restored = Trainer(ModelConfig(image_size=32), TrainConfig(head="probe"), in_chans=1, device=CPU)
    restored.load_state_dict(state, trainer.cycle, trainer.iterations_done)
    assert not restored.probe_embedder.morphology and restored.probe.extra_scale.numel() == 0
    np.testing.assert_allclose(score_components(restored.scoring_model, images, ScoreConfig(), CPU)["probe"],
                               score_components(trainer.scoring_model, images, ScoreConfig(), CPU)["probe"],
                               atol=1e-5)
    assert LinearProbe.from_state(state).extra_scale.numel() == 0


def test_scoring_graph_with_morphology_matches_eager_at_any_batch_size(single_band):
    from napari_anomalymatch.core.scoring.inference import prepare_scoring_model

    trainer, images, _ = single_band
    scorer = AnomalyScorer(trainer.ema.module, trainer.probe, "probe", trainer.probe_embedder)
    graph = prepare_scoring_model(scorer, ScoreConfig(compile="torchscript"), (1, 32, 32), CPU)
    eager = prepare_scoring_model(scorer, ScoreConfig(compile="none"), (1, 32, 32), CPU)
    assert graph.graph == "torchscript"
    for batch in (images[:16], images[16:23]):  # traced on 4 images; other batch sizes must work too
        np.testing.assert_allclose(graph(batch), eager(batch), atol=1e-4)
