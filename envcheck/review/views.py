"""The review's views: pandas tables computed from the index (index.Fleet), one function each.

Verdicts, equivalence classes and attribution only mean something against one golden: `by_golden`
splits a fleet into parts, and the views of one golden's runs refuse a mixed fleet.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from envcheck.model import IMAGE_DIFFERS_FROM_GOLDEN, VERDICT_RANK
from envcheck.review.index import INTERNAL_COLUMNS, Fleet, newest_rows


@dataclass(frozen=True)
class Golden:
    """One golden bundle, by content: reports against another golden are reviewed apart from it."""

    sha256: str
    path: str
    """The path the newest report gave; the same bundle may lie elsewhere on other machines."""
    other_paths: int = 0

    @property
    def label(self) -> str:
        """Path and short sha: reports carry no golden description to show instead."""
        plural = "s" if self.other_paths > 1 else ""
        elsewhere = f" (also at {self.other_paths} other path{plural})" if self.other_paths else ""
        return f"{self.path} · {self.sha256[:12]}{elsewhere}"


def by_golden(fleet: Fleet) -> list[tuple[Golden, Fleet]]:
    """The fleet split by golden (by path, then sha), each part a Fleet the views below accept.

    A verdict, an equivalence class ("same as golden") and an attribution only mean something against
    one golden; skipped files and file counts stay with every part, as they belong to the whole review."""
    runs = fleet.runs
    if runs.empty:
        return []
    shas = runs["golden_sha256"].unique()
    parts = []
    for sha in shas:
        # One golden, the common case, is the fleet itself: no copies of 10,000 rows.
        part = runs if len(shas) == 1 else runs[runs["golden_sha256"] == sha]
        newest = part["created"].idxmax()
        golden = Golden(str(sha), str(part.at[newest, "golden_path"]), part["golden_path"].nunique() - 1)
        if len(shas) == 1:
            parts.append((golden, fleet))
        else:
            diffs = fleet.diffs[fleet.diffs["row"].isin(part.index)]
            parts.append((golden, dataclasses.replace(fleet, runs=part, diffs=diffs)))
    return sorted(parts, key=lambda item: (item[0].path, item[0].sha256))


def _one_golden(fleet: Fleet) -> None:
    """The views compare runs with each other: refuse to mix runs against different goldens."""
    if fleet.runs["golden_sha256"].nunique() > 1:
        raise ValueError("these runs are against several goldens: review each part of by_golden(fleet)")


def latest(fleet: Fleet) -> pd.DataFrame:
    """The newest run of every golden × site × host × target, in row-label order (computed once per fleet:
    treat it as read-only)."""
    if fleet.latest_runs is None:
        if fleet.runs.empty:
            return fleet.runs
        fleet.latest_runs = fleet.runs.loc[newest_rows(fleet.runs)].sort_values(["place", "spec"])
    return fleet.latest_runs


def verdict_matrix(fleet: Fleet) -> pd.DataFrame:
    """Sites (with their host where needed: see `place`) as rows, targets as columns, the latest verdict in
    each cell; one golden's runs."""
    return _latest_matrix(fleet, "verdict")


def consistency_matrix(fleet: Fleet) -> pd.DataFrame:
    """The verdict matrix's shape, with the latest run's lowest output consistency in each cell (NaN where
    the report has none); one golden's runs."""
    return _latest_matrix(fleet, "consistency")


def _latest_matrix(fleet: Fleet, column: str) -> pd.DataFrame:
    """Sites (and hosts) × targets, the latest run's `column` in each cell; one golden's runs."""
    _one_golden(fleet)
    current = latest(fleet)
    if current.empty:
        return pd.DataFrame()
    return current.pivot(index="place", columns="spec", values=column).rename_axis(index="site")


def equivalence_classes(fleet: Fleet) -> pd.DataFrame:
    """Latest runs grouped by output digest: equal digests computed bitwise-identical outputs. One
    golden's runs, so "identical to golden" means identical to the golden these runs were checked against."""
    _one_golden(fleet)
    current = latest(fleet).dropna(subset=["output_digest"])
    if current.empty:
        return pd.DataFrame(columns=["output_digest", "members", "identical_to_golden", "sites", "targets", "verdicts"])
    classes = current.groupby("output_digest").agg(
        members=("spec", "size"), identical_to_golden=("outputs_identical", "all"),
        sites=("place", lambda s: sorted(set(s))), targets=("spec", lambda s: sorted(set(s))),
        verdicts=("verdict", lambda s: dict(s.value_counts())))
    return classes.reset_index().sort_values(["identical_to_golden", "members"], ascending=[False, False])


def attribution(fleet: Fleet) -> pd.DataFrame:
    """Which fingerprint differences co-occur with output drift across the latest runs, ranked; one
    golden's runs (a difference is a difference from that golden's fingerprint)."""
    _one_golden(fleet)
    current = latest(fleet).dropna(subset=["outputs_identical"])
    columns = ["path", "value", "severity", "drifting_with", "drifting_total", "others_with", "others_total"]
    if current.empty or fleet.diffs.empty:
        return pd.DataFrame(columns=columns)
    drifting = current.index[~current["outputs_identical"].astype(bool)]
    diffs = fleet.diffs[fleet.diffs["row"].isin(current.index)].copy()
    diffs["drifting"] = diffs["row"].isin(drifting)
    table = diffs.groupby(["path", "value", "severity"]).agg(drifting_with=("drifting", "sum"),
                                                             with_total=("row", "nunique")).reset_index()
    table["drifting_total"] = len(drifting)
    table["others_with"] = table["with_total"] - table["drifting_with"]
    table["others_total"] = len(current) - len(drifting)
    table = table[table["drifting_with"] > 0]
    return table.sort_values(["drifting_with", "others_with", "path"], ascending=[False, True, True])[columns]


def trend(fleet: Fleet) -> pd.DataFrame:
    """The worst verdict per site (and host, as in the matrix) per day (sites × dates); one golden's runs."""
    _one_golden(fleet)
    if fleet.runs.empty:
        return pd.DataFrame()
    worst = fleet.runs.groupby(["place", "date"])["verdict_rank"].max().unstack("date").rename_axis(index="site")
    # (one lookup over the whole table: a Series.map per day costs more than the rest of the view)
    names = {float(rank): verdict for verdict, rank in VERDICT_RANK.items()}
    words = np.array([names.get(rank, np.nan) for rank in worst.to_numpy(dtype=float).ravel().tolist()],
                     dtype=object).reshape(worst.shape)
    return pd.DataFrame(words, index=worst.index, columns=worst.columns)


def latency_trend(fleet: Fleet) -> pd.DataFrame:
    """The median P50 latency in ms per site (and host) per day (sites × dates), over the runs that timed
    the model; empty when none did. One golden's runs."""
    _one_golden(fleet)
    timed = fleet.runs.dropna(subset=["latency_p50_ms"])
    if timed.empty:
        return pd.DataFrame()
    return timed.groupby(["place", "date"])["latency_p50_ms"].median().unstack("date").rename_axis(index="site")


def integrity_findings(fleet: Fleet) -> pd.DataFrame:
    """The latest runs with installed-file or start-up-code findings (docs/integrity.md): site, spec, verdict and
    the findings' codes; one golden's runs."""
    _one_golden(fleet)
    columns = ["place", "spec", "verdict", "integrity_findings"]
    return latest(fleet).dropna(subset=["integrity_findings"])[columns].rename(columns={"place": "site"})


def first_divergences(fleet: Fleet) -> pd.DataFrame:
    """The latest runs whose numbers part from the golden's somewhere named: site (and host, as in the matrix),
    spec, verdict and the first origin's key, op and error in ULP; one golden's runs."""
    _one_golden(fleet)
    columns = ["place", "spec", "verdict", "first_divergence_key", "first_divergence_op", "first_divergence_ulp"]
    return latest(fleet).dropna(subset=["first_divergence_key"])[columns].rename(columns={"place": "site"})


IMAGE_COLUMNS = ["image_ref", "image_id", "short_id", "sites", "count", "images_under_tag", "several_images",
                 "differs_from_golden"]


def images_per_tag(fleet: Fleet) -> pd.DataFrame:
    """The image ids each Docker image reference (tag) resolved to in the latest runs, so "the same image
    everywhere" is checked rather than assumed: one row per tag × image id (IMAGE_COLUMNS) with its sites (and
    hosts, as in the matrix), how many, how many ids the tag has, whether that is several, and whether a run of
    it was told its image differs from the golden's. Tags with several images first. Targets whose image was
    never inspected (not found, not pulled) name no id: they neither confirm nor contradict a tag."""
    current = latest(fleet).dropna(subset=["image_ref", "image_id"])
    if current.empty:
        return pd.DataFrame(columns=IMAGE_COLUMNS)
    differs = [_has_finding(target, IMAGE_DIFFERS_FROM_GOLDEN) for target in evidence(fleet, current)]
    images = current.assign(differs=differs).groupby(["image_ref", "image_id"]).agg(
        sites=("place", lambda s: sorted(set(s))), differs_from_golden=("differs", "any")).reset_index()
    images["short_id"] = images["image_id"].str.removeprefix("sha256:").str[:12]  # as `docker images` shows it
    images["count"] = images["sites"].map(len)
    images["images_under_tag"] = images.groupby("image_ref")["image_id"].transform("size")
    images["several_images"] = images["images_under_tag"] > 1
    images = images.sort_values(["several_images", "image_ref", "count", "image_id"],
                                ascending=[False, True, False, True])
    return images[IMAGE_COLUMNS].reset_index(drop=True)


def _has_finding(target: dict[str, Any], code: str) -> bool:
    """Whether a target entry carries a finding with this code."""
    return any(finding.get("code") == code for finding in target.get("findings") or [])


def flat_table(fleet: Fleet) -> pd.DataFrame:
    """One row per golden × site × host × target × run, for CSV export."""
    return fleet.runs.drop(columns=INTERNAL_COLUMNS).sort_values(["golden_path", "golden_sha256", "site", "host",
                                                                  "spec", "created"])


def counts(fleet: Fleet) -> str:
    """ "5 sites · 7 targets · 10 runs" over the latest runs, naming the hosts too when a site's row is
    split by host (a site checked on two machines, or machines checked without --site)."""
    current = latest(fleet)
    if current.empty:
        return f"0 sites · 0 targets · {len(fleet.runs)} runs"
    sites = current["site"].nunique()
    hosts = f" · {current['host'].nunique()} hosts" if current["place"].nunique() != sites else ""
    return f"{sites} sites{hosts} · {current['spec'].nunique()} targets · {len(fleet.runs)} runs"


def evidence(fleet: Fleet, rows: pd.DataFrame) -> list[dict[str, Any]]:
    """The full target entries behind rows of `latest(fleet)`, in their order, as kept when their files
    were read (no file is read again)."""
    return [fleet.newest_targets[int(row)] for row in rows.index]
