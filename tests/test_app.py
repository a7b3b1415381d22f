"""The web app's logic without a browser: uploads, the folder corpus, captions, the About summary, the footprint map, the CLI."""

import argparse
import json
import re
import shlex
from pathlib import Path

import pytest
from app_fixtures import VALIDATION_METRICS, save_tiny_run, synth_images, write_uint16_tiff
from PIL import Image

from rs_retrieval import load_model_and_processor
from rs_retrieval.app.about import measured_metrics, model_summary
from rs_retrieval.app.files import session_folder
from rs_retrieval.app.footprints import footprint_map_html
from rs_retrieval.app.launch import default_captions_file, serve_command
from rs_retrieval.app.service import AppInputError, AppService, FolderCorpus, read_caption_file
from rs_retrieval.app.uploads import UploadError, read_upload
from rs_retrieval.cli.serve import register
from rs_retrieval.errors import RSRetrievalError
from rs_retrieval.search import search_images


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    """The tiny run, 12 rs_synth images and the loaded model."""
    root = tmp_path_factory.mktemp("served")
    model_dir, images = save_tiny_run(root / "run"), synth_images(root / "synth")
    model, processor = load_model_and_processor(str(model_dir))
    return argparse.Namespace(root=root, model_dir=model_dir, images=images, model=model, processor=processor)


def test_uploads_render_to_rgb_or_fail_with_the_reason(tmp_path):
    rgba = tmp_path / "a.png"
    Image.new("RGBA", (20, 10), (10, 200, 30, 128)).save(rgba)
    upload = read_upload(rgba)
    # half-transparent: composited on black, the package's nodata colour (docs/inputs.md)
    assert (
        upload.image.mode == "RGB" and upload.image.size == (20, 10) and upload.image.getpixel((0, 0)) == (5, 100, 15)
    )
    assert upload.note == ""

    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"\xff\xd8\xff not really a jpeg")
    with pytest.raises(UploadError, match=r"broken.jpg is not a readable image \(cannot identify image file"):
        read_upload(broken)
    with pytest.raises(UploadError, match="upload a file first"):
        read_upload(None)
    with pytest.raises(UploadError, match="did not arrive"):
        read_upload(tmp_path / "gone.png")
    with pytest.raises(UploadError, match=r"a.png is 20 x 10 pixels \(0.0 MP\), over the 0 MP limit"):
        read_upload(rgba, max_pixels=199)
    assert read_upload(rgba, max_pixels=200).image.size == (20, 10)
    with pytest.raises(UploadError, match=r"over the 0 MB upload limit"):
        read_upload(rgba, max_bytes=rgba.stat().st_size - 1)
    assert issubclass(UploadError, RSRetrievalError) and issubclass(UploadError, ValueError)


def test_an_image_past_pils_bomb_limit_gets_the_apps_size_message(tmp_path, monkeypatch):
    """PIL refuses to open images above twice its limit with a "decompression bomb" text; users see ours."""
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 100)
    large = tmp_path / "large.png"
    Image.new("RGB", (30, 20)).save(large)  # 600 px: past 2 x 100
    with pytest.raises(UploadError) as caught:
        read_upload(large, max_pixels=500)
    assert (
        str(caught.value) == "large.png is 30 x 20 pixels (0.0 MP), over the 0 MP limit: crop or downsample it first"
    )
    assert read_upload(large, max_pixels=600).image.size == (30, 20)


def test_16_bit_tiff_is_rendered_by_the_processor_rule_and_the_model_sees_the_same(served, tmp_path):
    import numpy as np

    from rs_retrieval.imagery import to_rgb_uint8
    from rs_retrieval.search import rank_captions

    pixels = write_uint16_tiff(tmp_path / "scene.tif")
    service = AppService(
        served.model, served.processor, "m", captions=["two white planes", "three red ships", "a beach"]
    )
    upload = service.read_upload(tmp_path / "scene.tif")
    assert upload.pixels.dtype == np.uint16 and np.array_equal(upload.pixels, pixels)
    assert np.array_equal(np.asarray(upload.image), to_rgb_uint8(pixels, "auto"))
    assert np.asarray(upload.image).max() == 255 and np.asarray(upload.image).min() == 0  # stretched, not clipped
    assert "uint16 image with 3 band(s), rendered to 8-bit RGB" in upload.note
    from_pixels = service.rank_captions(upload)
    from_rendering = rank_captions(upload.image, service.captions, served.model, served.processor)
    assert [c for c, _ in from_pixels] == [c for c, _ in from_rendering]
    assert [s for _, s in from_pixels] == pytest.approx([s for _, s in from_rendering], abs=1e-6)


def test_folder_corpus_encodes_in_the_background_and_ranks_like_search(served, tmp_path):
    corpus = FolderCorpus(served.images, served.model, served.processor, cache_dir=tmp_path / "cache", batch_size=5)
    assert not corpus.status().ready and corpus.status().message().startswith("Encoding images: 0 / 12")
    with pytest.raises(AppInputError, match="Searches work when this finishes"):
        corpus.search("planes", 3)
    progress = []
    corpus._progress = lambda done, total, record=corpus._progress: (
        progress.append((done, total)),
        record(done, total),
    )
    status = corpus.start().wait(120)
    assert status.ready and status.error is None and progress == [(5, 12), (10, 12), (12, 12)]

    service = AppService(served.model, served.processor, str(served.model_dir), corpus)
    query = "two white planes are parked beside a grey runway"
    expected = search_images(
        query, served.images, served.model, served.processor, top_k=4, cache_dir=tmp_path / "cache"
    )
    result = service.search(f"  {query} ", 4)
    # The gallery gets copies, file by file, in the server's own folder (what Gradio may serve).
    assert [Path(path).read_bytes() for path, _ in result.items] == [path.read_bytes() for path, _ in expected]
    assert all(Path(path).is_relative_to(session_folder()) for path, _ in result.items)
    assert [label for _, label in result.items] == [f"#{r} {s:.3f} {p.name}" for r, (p, s) in enumerate(expected, 1)]
    assert result.geojson is None
    for empty in ("", "   ", None):
        with pytest.raises(AppInputError, match="Type a query first"):
            service.search(empty, 4)
    with pytest.raises(AppInputError, match="--images DIR or --index INDEX"):
        AppService(served.model, served.processor, "m").search("planes", 3)


def test_a_folder_that_fails_to_encode_reports_the_error(served, tmp_path):
    folder = tmp_path / "imgs"
    folder.mkdir()
    (folder / "bad.png").write_bytes(b"not a png")
    status = FolderCorpus(folder, served.model, served.processor, cache_dir=tmp_path / "cache").start().wait(60)
    assert (
        not status.ready and "none of the 1 images" in status.error and status.message().startswith("Encoding failed")
    )


def test_captions_come_from_the_release_json_or_the_pasted_list(served):
    captions_file = default_captions_file(served.images)
    assert captions_file == served.images.parent / "dataset.json"
    captions = read_caption_file(captions_file)
    released = [s["raw"] for image in json.loads(captions_file.read_text())["images"] for s in image["sentences"]]
    assert captions == list(dict.fromkeys(c.strip() for c in released if c.strip())) and len(captions) > 10

    service = AppService(served.model, served.processor, str(served.model_dir), captions=captions)
    upload = read_upload(sorted(served.images.glob("*.png"))[0])
    ranked = service.rank_captions(upload)
    assert len(ranked) == 10 and {c for c, _ in ranked} <= set(captions)
    assert [s for _, s in ranked] == sorted((s for _, s in ranked), reverse=True)
    pasted = service.rank_captions(upload, "three red ships\n\n  two white planes  \n")
    assert sorted(c for c, _ in pasted) == ["three red ships", "two white planes"]
    with pytest.raises(AppInputError, match="No captions to rank"):
        AppService(served.model, served.processor, "m").rank_captions(upload)


def test_zero_shot_probabilities_match_the_classifier_and_typed_classes_use_the_set_templates(served):
    import torch

    from rs_retrieval.zeroshot import ClassSetError, ZeroShotClassifier, load_class_set

    service = AppService(served.model, served.processor, "m", extra_class_sets=["rs_synth"])
    assert service.class_sets()[0] == "rs_synth" and "aid" in service.class_sets()
    upload = read_upload(sorted(served.images.glob("*.png"))[0])
    probabilities = service.classify(upload, "rs_synth")
    class_set = load_class_set("rs_synth")
    expected = ZeroShotClassifier(served.model, served.processor, class_set).predict_proba([upload.image])[0]
    assert list(probabilities) == list(class_set.classes)
    assert torch.tensor(list(probabilities.values())) == pytest.approx(expected, abs=1e-6)
    assert sum(probabilities.values()) == pytest.approx(1.0, abs=1e-5)

    typed = service.classify(upload, "rs_synth", "airport, beach\nforest, beach")
    assert list(typed) == ["airport", "beach", "forest"] and sum(typed.values()) == pytest.approx(1.0, abs=1e-5)
    assert service._classifier("rs_synth", ("airport", "beach", "forest")).class_set.templates == class_set.templates
    with pytest.raises(AppInputError, match="at least two classes"):
        service.classify(upload, "rs_synth", "airport")
    with pytest.raises(AppInputError, match="Pick a class set"):
        service.classify(upload, None, "airport, beach")
    with pytest.raises(ClassSetError, match="neither a packaged class set"):
        service.classify(upload, "no_such_set")


def test_caption_file_lines_are_stripped_and_deduplicated(tmp_path):
    path = tmp_path / "captions.txt"
    path.write_text("a ship\n\n a ship \ntwo planes\n")
    assert read_caption_file(path) == ["a ship", "two planes"]
    with pytest.raises(AppInputError, match="not found"):
        read_caption_file(tmp_path / "missing.txt")


def test_about_summary_shows_method_size_and_measured_metrics(served):
    assert measured_metrics(served.model_dir) == {"validation (selected checkpoint)": VALIDATION_METRICS}
    text = model_summary(served.model, served.processor, served.model_dir, "12 images")
    params = sum(p.numel() for p in served.model.parameters())
    assert "## AMFMN" in text and f"| parameters | {params:,} |" in text and "| image input | 64 px |" in text
    assert "| validation (selected checkpoint) | 10.0 | 30.0 | 50.0 | 12.5 | 37.5 | 62.5 | 33.8 |" in text
    assert "No metrics.json" in model_summary(served.model, served.processor, "org/hub-id")


def test_footprint_map_draws_each_hit_scaled_to_the_extent():
    square = [[10.0, 50.0], [10.01, 50.0], [10.01, 50.01], [10.0, 50.01], [10.0, 50.0]]
    shifted = [[x + 0.02, y] for x, y in square]
    geojson = {
        "type": "FeatureCollection",
        "features": [
            {
                "type": "Feature",
                "geometry": {"type": "Polygon", "coordinates": [square]},
                "properties": {"rank": 1, "score": 0.9},
            },
            {
                "type": "Feature",
                "geometry": {"type": "Polygon", "coordinates": [shifted]},
                "properties": {"rank": 2, "score": 0.5},
            },
            {"type": "Feature", "geometry": None, "properties": {"rank": 3}},
        ],
    }
    svg = footprint_map_html(geojson)
    polygons = re.findall(r'<polygon class="footprint" points="([^"]+)"><title>([^<]+)</title>', svg)
    assert [title for _, title in polygons] == ["#2  score 0.500", "#1  score 0.900"]  # best drawn last, on top
    xs = [[float(p.split(",")[0]) for p in points.split()] for points, _ in polygons]
    width_1, width_2 = max(xs[1]) - min(xs[1]), max(xs[0]) - min(xs[0])
    assert width_1 == pytest.approx(width_2, abs=0.2) and min(xs[0]) > max(xs[1])  # same size, rank 2 east of rank 1
    assert "2 footprints" in svg
    assert "No georeferenced footprints" in footprint_map_html({"features": []})


def test_serve_is_a_registered_command_with_exclusive_sources():
    parser = argparse.ArgumentParser()
    register(parser.add_subparsers())
    args = parser.parse_args(["serve", "--model", "m", "--images", "d", "--port", "7861"])
    assert (args.model, args.images, args.index, args.port, args.max_upload_mb) == ("m", "d", None, 7861, 64.0)
    with pytest.raises(SystemExit):
        parser.parse_args(["serve", "--model", "m", "--images", "d", "--index", "i"])
    line = serve_command(
        "runs/quickstart/model", images="runs/quickstart/test_images", captions="my data/dataset.json"
    )
    assert (
        line
        == "rs-retrieval serve --model runs/quickstart/model --images runs/quickstart/test_images --captions 'my data/dataset.json'"
    )
    args = parser.parse_args(shlex.split(line)[1:])
    assert (args.model, args.images, args.captions) == (
        "runs/quickstart/model",
        "runs/quickstart/test_images",
        "my data/dataset.json",
    )


def test_probability_bars_are_sorted_with_widths_equal_to_the_probabilities():
    from rs_retrieval.app.ui import probability_bars

    chart = probability_bars({"beach": 0.25, "airport <b>": 0.7, "forest": 0.05})
    rows = re.findall(r'prob-class">([^<]*)</span>.*?width:([\d.]+)%.*?prob-value">([^<]*)<', chart)
    assert rows == [("airport &lt;b&gt;", "70.00", "70.0%"), ("beach", "25.00", "25.0%"), ("forest", "5.00", "5.0%")]


@pytest.mark.parametrize("crs", ["EPSG:32633", None])
def test_scene_index_hits_come_with_tiles_footprints_and_a_scene_picture(served, tmp_path, crs):
    import numpy as np
    from app_fixtures import build_scene_index

    from rs_retrieval.app.service import IndexCorpus

    index_dir = build_scene_index(served.model_dir, served.images, tmp_path / "index", crs)
    corpus = IndexCorpus(index_dir, served.model, served.processor)
    assert corpus.is_scene and corpus.georeferenced == (crs is not None) and corpus.status().ready
    service = AppService(served.model, served.processor, str(served.model_dir), corpus)
    result = service.search("two white planes", 3)
    hits = corpus.index.search("two white planes", 3)
    assert [label for _, label in result.items] == [f"#{h.rank} {h.score:.3f} {h.tile_id}" for h in hits]
    tiles = [Image.open(p).convert("RGB") for p in sorted(served.images.glob("*.png"))[:4]]
    for (image, _), hit in zip(result.items, hits):
        col, row = hit.window[:2]
        assert np.array_equal(np.asarray(image), np.asarray(tiles[(row // 64) * 2 + col // 64]))  # the hit's own tile
    assert [f["properties"]["rank"] for f in result.geojson["features"]] == [1, 2, 3]
    assert json.loads(Path(result.geojson_path).read_text()) == json.loads(
        json.dumps(result.geojson)
    )  # tuples become lists
    expected = np.asarray(Image.open(corpus.index.draw(hits, tmp_path / "expected.png")).convert("RGB"))
    assert np.array_equal(
        np.asarray(Image.open(result.overview).convert("RGB")), expected
    )  # the index's scene picture
    if crs:
        assert footprint_map_html(result.geojson).count('class="footprint"') == 3


def test_folder_index_hits_and_tiff_files_are_rendered_for_the_gallery(served, tmp_path):
    import shutil

    import numpy as np

    from rs_retrieval.app.service import IndexCorpus
    from rs_retrieval.imagery import to_rgb_uint8
    from rs_retrieval.index import RetrievalIndex

    folder = tmp_path / "imgs"
    shutil.copytree(served.images, folder, ignore=shutil.ignore_patterns("*_1*.png", "*_2*.png"))
    pixels = write_uint16_tiff(folder / "scene.tif")
    corpus = FolderCorpus(folder, served.model, served.processor, cache_dir=tmp_path / "cache")
    corpus.start().wait(120)
    items = dict((label.split()[-1], image) for image, label in corpus.search("planes", 50).items)
    assert isinstance(items["scene.tif"], Image.Image) and np.array_equal(
        np.asarray(items["scene.tif"]), to_rgb_uint8(pixels)
    )
    assert all(
        isinstance(image, str) and image.endswith(".png") for name, image in items.items() if name != "scene.tif"
    )

    RetrievalIndex.build(served.model, served.processor, tmp_path / "index", images=folder, progress=False)
    index_corpus = IndexCorpus(tmp_path / "index", served.model, served.processor)
    assert not index_corpus.is_scene and index_corpus.status().message() == f"Ready: {len(items)} images searchable."
    result = index_corpus.search("planes", 3)
    hits = index_corpus.index.search("planes", 3)
    assert [label for _, label in result.items] == [f"#{h.rank} {h.score:.3f} {Path(h.path).name}" for h in hits]
    assert result.geojson is None and result.overview is None
    for (image, _), hit in zip(result.items, hits):
        assert np.array_equal(np.asarray(image), to_rgb_uint8(Path(hit.path)))


def test_a_clip_family_folder_serves_every_tab(served, tmp_path):
    """The app loads models through the package's loader, so a saved CLIP folder works like our methods."""
    from clip_helpers import tiny_clip

    model, processor = tiny_clip()
    model.save_pretrained(tmp_path / "clip")
    processor.save_pretrained(tmp_path / "clip")
    clip, clip_processor = load_model_and_processor(str(tmp_path / "clip"))
    corpus = FolderCorpus(served.images, clip, clip_processor, cache_dir=tmp_path / "cache")
    assert corpus.start().wait(120).ready
    service = AppService(
        clip, clip_processor, str(tmp_path / "clip"), corpus, captions=["two white planes", "a beach"]
    )
    assert len(service.search("two white planes", 3).items) == 3
    upload = service.read_upload(sorted(served.images.glob("*.png"))[0])
    assert [c for c, _ in service.rank_captions(upload)] and len(service.classify(upload, "rs_synth")) == 8
    assert "No metrics.json" in model_summary(clip, clip_processor, tmp_path / "clip")
