"""The same tag is not the same image: the fleet review groups the sites by the image id each Docker tag
resolved to, in its view, the terminal, the page and the CSV.

Reports are copies of the recorded beijing-1 (a host target and two Docker images) with the site, the hashed
hostname and the image edited: plant-a and plant-c run factory/vision:1.4 as image A, plant-b as image B.
"""
from __future__ import annotations

import copy
import csv
import io
import re
from pathlib import Path

import pandas as pd
import pytest
from rich.console import Console

from envcheck.report.fleet_csv import render_review_csv
from envcheck.report.fleet_html import render_review_html
from envcheck.report.fleet_terminal import render_review
from envcheck.review import review, views
from envcheck.review.load import load_fleet
from helpers import write_reports

TAG = "factory/vision:1.4"
IMAGE_A, IMAGE_B = "sha256:" + "a1" * 32, "sha256:" + "b2" * 32
HOSTILE_TAG = '<script>window.__pwned=1</script>:[bold]1.4[/bold]'
REFERENCE, NONROOT = "docker:envcheck-fixture/reference", "docker:envcheck-fixture/nonroot"
DIFFERS = {"code": "image-differs-from-golden", "severity": "warn", "hint": "pin images by digest",
           "message": f"{TAG} is image {IMAGE_B[7:19]} here, but the golden was made in {IMAGE_A[7:19]}"}


def plant(recorded: dict, site: str, image_id: str, tag: str = TAG, findings: list | None = None) -> dict:
    """beijing-1 as checked at `site` (its own machine), its reference image run as `tag` → `image_id`."""
    report = copy.deepcopy(recorded)
    for target in report["targets"]:
        target["site"] = site
        target["fingerprint"]["host"]["hostname"] = f"sha256:{site.encode().hex():0<16}"
        if target["spec"] == REFERENCE:
            target["target"]["image_ref"] = tag
            target["target"]["image"]["id"] = image_id
            target["findings"] = findings or []
    return report


@pytest.fixture
def three_plants(recorded_reports, tmp_path) -> Path:
    """plant-a and plant-c: the tag is image A; plant-b: image B, and told so (image-differs-from-golden)."""
    beijing = recorded_reports["beijing-1"]
    return write_reports(tmp_path / "fleet", {"plant-a": plant(beijing, "plant-a", IMAGE_A),
                                      "plant-b": plant(beijing, "plant-b", IMAGE_B, findings=[DIFFERS]),
                                      "plant-c": plant(beijing, "plant-c", IMAGE_A)})


def console_text(renderable) -> str:
    """What the terminal shows, wide enough that no line wraps."""
    console = Console(file=io.StringIO(), width=400, color_system=None)
    console.print(renderable)
    return console.file.getvalue()


def images_table(page: str) -> str:
    """The page's "Images per tag" table (one golden: its id has no suffix)."""
    return re.search(r'<table class="sortable" id="images">.*?</table>', page, re.DOTALL).group()


def test_index_has_the_image_of_docker_targets_only(three_plants):
    runs = load_fleet([three_plants]).runs
    docker = runs[runs["spec"] == REFERENCE].set_index("site")
    assert docker.loc["plant-b", "image_ref"] == TAG and docker.loc["plant-b", "image_id"] == IMAGE_B
    host = runs[runs["spec"] == "host"]
    assert host["image_ref"].isna().all() and host["image_id"].isna().all()


def test_view_groups_sites_by_image_id_per_tag(three_plants):
    images = views.images_per_tag(load_fleet([three_plants]))
    assert list(images.columns) == views.IMAGE_COLUMNS
    # The tag with two images comes first, its image on more sites first; the nonroot tag is one image.
    rows = [(r.image_ref, r.image_id, r.sites, r.count, r.images_under_tag, r.several_images, r.differs_from_golden)
            for r in images.itertuples()]
    nonroot = "envcheck-fixture/nonroot"
    nonroot_id = images.loc[images["image_ref"] == nonroot, "image_id"].item()
    assert rows == [(TAG, IMAGE_A, ["plant-a", "plant-c"], 2, 2, True, False),
                    (TAG, IMAGE_B, ["plant-b"], 1, 2, True, True),
                    (nonroot, nonroot_id, ["plant-a", "plant-b", "plant-c"], 3, 1, False, False)]
    assert list(images["short_id"][:2]) == ["a1" * 6, "b2" * 6]


def test_view_reads_the_latest_run_of_each_site(three_plants, recorded_reports):
    """plant-b rolled back to image A the next day: the tag is one image again."""
    fixed = dict(plant(recorded_reports["beijing-1"], "plant-b", IMAGE_A), created="2026-11-26T12:00:00Z")
    write_reports(three_plants, {"plant-b-later": fixed})
    (section,) = review([three_plants]).sections
    tag = section.images[section.images["image_ref"] == TAG]
    assert len(tag) == 1 and tag.iloc[0]["sites"] == ["plant-a", "plant-b", "plant-c"]
    assert not tag.iloc[0]["several_images"] and not tag.iloc[0]["differs_from_golden"]


def test_terminal_marks_a_tag_with_two_images(three_plants):
    shown = console_text(render_review(review([three_plants])))
    assert "Images per tag" in shown
    lines = shown.splitlines()
    first = next(line for line in lines if "a1" * 6 in line)
    assert TAG in first and "⚠ 2 images under this tag" in first and "plant-a, plant-c" in first
    second = next(line for line in lines if "b2" * 6 in line)
    assert TAG not in second and "plant-b" in second and "not the golden's image" in second
    assert IMAGE_A not in shown  # ids are shown short
    assert shown.count("images under this tag") == 1


def test_page_marks_a_tag_with_two_images(three_plants):
    table = images_table(render_review_html(review([three_plants])))
    assert table.count("<tr>") == 4  # header + 3 images
    assert table.count("⚠ 2 images under this tag") == 2  # every row names its tag: the table sorts and filters
    assert f'<code title="{IMAGE_B}">{"b2" * 6}</code>' in table and "not the golden's image" in table
    assert "<td>plant-a, plant-c</td>" in table


def test_hostile_tag_is_escaped(three_plants, recorded_reports):
    write_reports(three_plants, {"plant-d": plant(recorded_reports["beijing-1"], "plant-d", IMAGE_A, tag=HOSTILE_TAG)})
    result = review([three_plants])
    table = images_table(render_review_html(result))
    assert "<script>" not in table and "&lt;script&gt;window.__pwned=1&lt;/script&gt;" in table
    assert HOSTILE_TAG in console_text(render_review(result))  # words, never rich markup


def test_csv_has_the_image_columns(three_plants):
    rows = list(csv.DictReader(io.StringIO(render_review_csv(review([three_plants])))))
    by_target = {(r["site"], r["spec"]): r for r in rows}
    assert (by_target[("plant-b", REFERENCE)]["image_ref"], by_target[("plant-b", REFERENCE)]["image_id"]) == (TAG, IMAGE_B)
    assert (by_target[("plant-a", "host")]["image_ref"], by_target[("plant-a", "host")]["image_id"]) == ("", "")


def test_no_docker_targets_no_table(recorded_reports, tmp_path):
    result = review([write_reports(tmp_path / "fleet", {"xian-4": recorded_reports["xian-4-avx2"]})])
    assert result.sections[0].images.empty
    assert "Images per tag" not in console_text(render_review(result))
    assert 'id="images"' not in render_review_html(result)


@pytest.mark.parametrize("garbage", [
    {"image": "sha256:abc"}, {"image": ["sha256:abc"]}, {"image": {"id": 42}}, {"image": {"id": None}},
    {"image": {"id": ""}}, {"image": None}, {"image_ref": ["factory/vision"], "image": {"id": {"sha256": "abc"}}},
    {"image_ref": 3, "kind": 7, "image": 1.5}, {"kind": "docker", "image": {}},
])
def test_garbage_image_entries_do_not_crash(garbage, recorded_reports, tmp_path):
    """A hand-edited report passes the schema with anything under `target`: such an image has no id."""
    report = plant(recorded_reports["beijing-1"], "plant-x", IMAGE_A)
    for target in report["targets"]:
        if target["spec"] == NONROOT:
            target["target"] = {key: value for key, value in target["target"].items() if key not in garbage} | garbage
    result = review([write_reports(tmp_path / "fleet", {"plant-x": report})])
    (section,) = result.sections
    assert list(section.images["image_ref"]) == [TAG]  # the nonroot image is left out, the rest shown
    nonroot = result.fleet.runs[result.fleet.runs["spec"] == NONROOT].iloc[0]
    assert pd.isna(nonroot["image_id"])
    assert pd.isna(nonroot["image_ref"]) or nonroot["image_ref"] == "envcheck-fixture/nonroot"
    assert "Images per tag" in console_text(render_review(result)) and 'id="images"' in render_review_html(result)
    assert render_review_csv(result)


def test_an_image_that_was_not_found_names_its_tag_but_no_id(recorded_reports, tmp_path):
    """shenzhen-3's missing image: its reference is in the table, its id unknown; it is no row of the view."""
    result = review([write_reports(tmp_path / "fleet", {"shenzhen-3": recorded_reports["shenzhen-3"]})])
    runs = result.fleet.runs.set_index("spec")
    assert runs.loc["docker:envcheck-fixture/missing", "image_ref"] == "envcheck-fixture/missing"
    assert pd.isna(runs.loc["docker:envcheck-fixture/missing", "image_id"])
    assert "envcheck-fixture/missing" not in set(result.sections[0].images["image_ref"])
