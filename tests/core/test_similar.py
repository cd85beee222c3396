"""Embeddings stored by scoring, and 'more like this' over them (exact and through faiss)."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
import torch
from PIL import Image

from napari_anomalymatch.core.discovery import search
from napari_anomalymatch.core.discovery.index import SimilarityIndex, build_index
from napari_anomalymatch.core.discovery.similarity import exact_search
from napari_anomalymatch.core.errors import NoEmbeddingsError, ShapeMismatchError, UnknownIdError
from napari_anomalymatch.core.loading import load_images
from napari_anomalymatch.core.scoring.run import embedding_network, run_to_end
from napari_anomalymatch.core.scoring.store import EMBEDDINGS, ScoreStore
from napari_anomalymatch.core.session import Session

from ..conftest import rare_bar_folder, tiny_config, write_pngs


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A session trained one cycle and scored (training is the slow part: done once)."""
    root = tmp_path_factory.mktemp("similar")
    folder, truth = rare_bar_folder(root / "images")
    with Session.create(root / "session", tiny_config(folder)) as s:
        ids = s.collection.ids()
        for i in (7, 23):
            s.label(ids[i], "anomaly")
        for i in (0, 1, 2):
            s.label(ids[i], "normal")
        list(s.train())
        with pytest.raises(NoEmbeddingsError, match="anomalymatch score"):
            s.similar([0])
        run_to_end(s.score())
        yield s, truth


def _embeddings(session) -> np.ndarray:
    return ScoreStore.existing(session.runs.directory(session.cycle)).embeddings()


def test_scoring_stores_each_images_embedding_in_collection_order(trained):
    session, _ = trained
    stored = _embeddings(session)
    assert stored.dtype == np.float16 and stored.shape == (40, 1280)
    assert isinstance(stored, np.memmap)  # read on demand, not held
    # the same features the network gives each image on its own
    images, _ = run_to_end(load_images(session.collection, session.normaliser, 32, [5, 33], num_workers=0))
    network = embedding_network(session.trainer.scoring_model, session.trainer.device)
    with torch.inference_mode():
        direct = network.embed(images.float()).numpy()
    np.testing.assert_allclose(stored[[5, 33]].astype(np.float32), direct, rtol=2e-2, atol=2e-2)


def test_a_stopped_run_resumes_its_embeddings_like_its_scores(trained):
    session, _ = trained
    whole = np.array(_embeddings(session))
    directory = session.runs.directory(session.cycle)
    shutil.rmtree(directory)
    run = session.score()
    [next(run) for _ in range(2)]  # parts 0 and 1 (16 images each) written
    run.close()
    assert sorted(p.name for p in directory.glob("embeddings-part-*")) == [
        "embeddings-part-000000.npy", "embeddings-part-000001.npy"]
    assert run_to_end(session.score()).n_scored == 8  # only the last part is scored again
    np.testing.assert_array_equal(np.array(_embeddings(session)), whole)


def test_more_like_this_finds_the_other_bars_first(trained):
    session, _ = trained
    ids = session.collection.ids()
    found = session.similar([ids[7]], top=5)
    assert found.method == "exact" and 7 not in found.indices
    assert set(found.indices[:2]) == {23, 31}  # the other images with a bar
    assert np.all(np.diff(found.similarities) <= 1e-6) and found.ids[0] == ids[found.indices[0]]
    both = session.similar([7, 23], top=3)
    assert both.indices[0] == 31


def test_an_image_file_is_embedded_like_the_collection(trained, tmp_path):
    session, _ = trained
    image = np.asarray(Image.open(session.collection.paths[31]))
    query = write_pngs(tmp_path / "mine", image[None])[0]
    found = session.similar([query], top=3)
    assert found.indices[0] == 31 and found.similarities[0] > 0.999  # the same picture, embedded alike


def test_bad_queries_say_what_to_give(trained, tmp_path):
    session, _ = trained
    with pytest.raises(UnknownIdError, match="neither an image id"):
        session.similar(["no-such-image"])
    with pytest.raises(UnknownIdError, match="outside the collection"):
        session.similar([400])
    colour = write_pngs(tmp_path / "rgb", np.zeros((1, 32, 32, 3), dtype=np.uint8))[0]
    with pytest.raises(ShapeMismatchError, match="3 channels"):
        session.similar([colour])


def test_exact_search_in_chunks_equals_one_matrix_product():
    rng = np.random.default_rng(0)
    rows = rng.standard_normal((1000, 24)).astype(np.float16)
    rows[17] = np.nan  # an image that could not be embedded
    query = rng.standard_normal(24).astype(np.float32)
    indices, sims = exact_search([rows[:300], rows[300:]], query[None], 10)
    unit = rows.astype(np.float32) / np.linalg.norm(rows.astype(np.float32), axis=1, keepdims=True)
    expected = np.argsort(-np.nan_to_num(unit @ (query / np.linalg.norm(query)), nan=-9))[:10]
    np.testing.assert_array_equal(indices, expected)
    assert 17 not in indices and np.all(np.diff(sims) <= 0)


def test_the_index_agrees_with_exact_search_and_is_saved(tmp_path, monkeypatch, trained):
    rng = np.random.default_rng(1)
    centres = rng.standard_normal((20, 64))
    rows = (centres[rng.integers(0, 20, 5000)] + 0.3 * rng.standard_normal((5000, 64))).astype(np.float16)
    index = build_index(lambda: iter([rows[:2000], rows[2000:]]), len(rows), 64)
    queries = rows[:10].astype(np.float32)
    recall = np.mean([len(set(index.search(q[None], 50)[0]) & set(exact_search([rows], q[None], 50)[0])) / 50
                      for q in queries])
    assert recall >= 0.95 and len(index) == 5000
    index.save(tmp_path / "i.faiss")
    np.testing.assert_array_equal(SimilarityIndex.load(tmp_path / "i.faiss").search(queries[:1], 5)[0],
                                  index.search(queries[:1], 5)[0])
    # a session above the exact limit searches its index, built once and kept in the run's folder
    session, _ = trained
    monkeypatch.setattr(search, "EXACT_LIMIT", 10)
    found = session.similar([7], top=5)
    assert found.method == "faiss" and (session.runs.directory(1) / search.INDEX_FILE).exists()
    assert set(found.indices[:2]) == {23, 31}
    assert (session.runs.directory(1) / EMBEDDINGS).exists()
