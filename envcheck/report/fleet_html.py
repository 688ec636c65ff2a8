"""The fleet review page: verdict matrix with drill-down, equivalence classes, attribution, trend."""
from __future__ import annotations

from html import escape

from envcheck.report import fleet as fleet_views
from envcheck.report.html import target_section
from envcheck.report.html_common import badge, page, table, text


def render_review_html(fleet: fleet_views.Fleet) -> str:
    current = fleet_views.latest(fleet)
    matrix = fleet_views.verdict_matrix(fleet)
    anchors = {(row.site, row.spec): f"drill-{i}" for i, row in enumerate(current.itertuples())}
    body = ["<h1>envcheck fleet review</h1>",
            f'<p class="muted">{fleet.files_read} reports read · {len(fleet.skipped)} skipped · '
            f'{current["site"].nunique() if len(current) else 0} sites · '
            f'{current["spec"].nunique() if len(current) else 0} targets · {len(fleet.runs)} runs</p>']

    body.append("<h2>Latest verdict per site × target</h2>")
    if not matrix.empty:
        rows = []
        for site, cells in matrix.iterrows():
            row = [text(site)]
            for spec, verdict in cells.items():
                if isinstance(verdict, str):
                    row.append(f'<td data-sort="{fleet_views.VERDICT_RANK[verdict]}"><a href="#{anchors[(site, spec)]}">'
                               f"{badge(verdict)}</a></td>")
                else:
                    row.append("<td></td>")
            rows.append(row)
        body.append(table(["site", *map(str, matrix.columns)], rows, table_id="matrix", filterable=True))

    classes = fleet_views.equivalence_classes(fleet)
    body.append("<h2>Equivalence classes (bitwise-identical outputs)</h2>")
    body.append(table(["outputs", "members", "same as golden", "sites", "targets", "verdicts"],
                      [[f"<code>{text(c.output_digest[:12])}</code>", str(c.members), "yes" if c.identical_to_golden else "no",
                        text(", ".join(c.sites)), text(", ".join(c.targets)),
                        text(", ".join(f"{k} {v}" for k, v in c.verdicts.items()))] for c in classes.itertuples()],
                      table_id="classes", filterable=True))

    ranked = fleet_views.attribution(fleet)
    body.append("<h2>What drifting targets have in common</h2>")
    if ranked.empty:
        body.append('<p class="muted">No output drift among the latest runs.</p>')
    else:
        body.append(table(["difference", "severity", "drifting with it", "others with it", "reads"],
                          [[f"<code>{text(r['path'])}</code> = {text(r['value'])}", text(r["severity"]),
                            f"{r['drifting_with']} / {r['drifting_total']}", f"{r['others_with']} / {r['others_total']}",
                            text(fleet_views.attribution_sentence(r))] for _, r in ranked.head(25).iterrows()],
                          table_id="attribution"))

    history = fleet_views.trend(fleet)
    if history.shape[1] > 1:
        body.append("<h2>Trend: worst verdict per site per day</h2>")
        body.append(table(["site", *map(str, history.columns)],
                          [[text(site), *(badge(v) if isinstance(v, str) else "" for v in cells)]
                           for site, cells in history.iterrows()], table_id="trend", filterable=True))

    if fleet.skipped:
        body.append("<h2>Skipped files</h2>")
        body.append(table(["file", "why"], [[text(f), text(why)] for f, why in fleet.skipped], table_id="skipped"))

    body.append("<h2>Evidence (latest run of each site × target)</h2>")
    for row, target in zip(current.itertuples(), fleet_views.evidence(current), strict=True):
        body.append(f'<p class="muted">{escape(row.site)} · {escape(str(row.created))} · {escape(row.file)}</p>')
        body.append(target_section(target, anchors[(row.site, row.spec)]))
    return page("envcheck fleet review", "".join(body))
