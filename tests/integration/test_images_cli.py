"""The image commands as a user runs them: `ragloop ingest` of image files, `ragloop search --image`,
`ragloop eval images`, and the clear refusal when no CLIP checkpoint is configured."""

from __future__ import annotations

from pathlib import Path

from indexing.images.store import image_id
from tests.images_support import image_bytes
from tests.integration.cli_harness import Cli, embedded_env


def clip_env(home: Path, clip_checkpoint: tuple[str, Path]) -> dict[str, str]:
    return embedded_env(home, RAGLOOP_CLIP_MODEL=clip_checkpoint[0], RAGLOOP_CLIP_CHECKPOINT=str(clip_checkpoint[1]))


def test_ingested_image_files_are_found_by_image_and_by_text(tmp_path: Path, clip_checkpoint: tuple[str, Path]) -> None:
    photos = tmp_path / "photos"
    photos.mkdir()
    files = {"red.jpg": image_bytes("JPEG", color=(220, 20, 20)), "sky.png": image_bytes("PNG", color=(20, 20, 220))}
    for name, data in files.items():
        (photos / name).write_bytes(data)
    run = Cli(clip_env(tmp_path / "home", clip_checkpoint))
    run.ok("ingest", str(photos), "--tenant", "acme")
    hits = run.json("search", "--image", str(photos / "sky.png"), "--tenant", "acme", "--json")
    assert hits[0]["image_id"] == image_id("acme", files["sky.png"]) and hits[0]["url"] == f"/v1/images/{hits[0]['image_id']}"
    assert {h["image_id"] for h in run.json("search", "sky", "--images", "--tenant", "acme", "--json")} == \
        {image_id("acme", data) for data in files.values()}
    assert run.json("search", "--image", str(photos / "sky.png"), "--tenant", "other", "--json") == []


def test_without_a_checkpoint_image_commands_say_what_to_set(tmp_path: Path) -> None:
    picture = tmp_path / "a.png"
    picture.write_bytes(image_bytes("PNG"))
    run = Cli(embedded_env(tmp_path / "home"), drop=("RAGLOOP_CLIP_CHECKPOINT",))
    for args in (("search", "--image", str(picture)), ("eval", "images", "--dataset", str(tmp_path))):
        result = run(*args)
        assert result.returncode != 0 and "RAGLOOP_CLIP_CHECKPOINT" in result.stderr, result.stderr


def test_eval_images_reports_recall_on_a_captions_file(tmp_path: Path, clip_checkpoint: tuple[str, Path]) -> None:
    dataset = tmp_path / "captions-set"
    (dataset / "images").mkdir(parents=True)
    colours = {"red": (220, 20, 20), "green": (20, 220, 20), "blue": (20, 20, 220)}
    rows = ["image,caption"]
    for name, colour in colours.items():
        (dataset / "images" / f"{name}.jpg").write_bytes(image_bytes("JPEG", color=colour))
        rows += [f"{name}.jpg,a {name} square", f"{name}.jpg,something {name}"]
    (dataset / "captions.txt").write_text("\n".join(rows) + "\n")
    report = Cli(embedded_env(tmp_path / "home", RAGLOOP_CLIP_MODEL=clip_checkpoint[0])).json("eval", "images", "--dataset", str(dataset),
                                                       "--clip-checkpoint", str(clip_checkpoint[1]), "--json")
    assert set(report) == {"recall@1", "recall@5", "recall@10", "images", "captions"}
    assert (report["images"], report["captions"]) == (3, 6)
    assert report["recall@5"] == report["recall@10"] == 1.0 and 0.0 <= report["recall@1"] <= 1.0


def test_a_checkpoint_of_another_architecture_is_a_clear_error(tmp_path: Path, clip_checkpoint: tuple[str, Path]) -> None:
    result = Cli(embedded_env(tmp_path / "home", RAGLOOP_CLIP_MODEL="ViT-B-32", RAGLOOP_CLIP_CHECKPOINT=str(clip_checkpoint[1])))(
        "search", "--images", "a cat")
    assert result.returncode != 0 and "does not load as RAGLOOP_CLIP_MODEL='ViT-B-32'" in result.stderr, result.stderr
