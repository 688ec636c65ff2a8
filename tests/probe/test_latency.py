"""The probe's latency stage: its arithmetic (nearest-rank percentiles, MAD, blocks, histogram, CPU quota,
steal) on known numbers, its stopping rule on synthetic timings (a fake clock), and the real stage through
`envcheck probe` on this host (real TensorFlow)."""
from __future__ import annotations

import json
import math
import random
import re
import shutil
from fractions import Fraction

import pytest

from envcheck import schemas
from envcheck.capture import CAPTURE_SCHEMA
from envcheck.errors import ExitCode
from envcheck.targets.probe_app import DEFAULT_LATENCY_BUDGET_S

CONTRACT_KEYS = {"budget_s", "batch", "cold_first_call_s", "warmup_calls", "calls", "p50_s", "p90_s", "p99_s",
                 "mad_s", "mean_s", "min_s", "max_s", "block_p50_s", "throughput_per_s", "golden_batch", "histogram",
                 "context", "stopped", "precision", "precision_goal", "confidence", "waited_for", "timed_budget_s",
                 "timed_s"}
CONTEXT_KEYS = {"visible_cpus", "cpu_quota_cpus", "intra_op_threads", "inter_op_threads", "loadavg_1m",
                "steal_fraction"}
LABEL = re.compile(r"^(\d+(\.\d+)?\u2013\d+(\.\d+)? ms|\u2265 \d+(\.\d+)? ms)$")


# ------------------------------------------------------------------------------------ arithmetic

def test_percentiles_are_nearest_rank_as_loadgen_computes_them(probe):
    percentile = probe.latency.percentile
    hundred = [float(v) for v in range(1, 101)]
    assert [percentile(hundred, p) for p in (0.5, 0.9, 0.99)] == [50.0, 90.0, 99.0]
    assert percentile([7.0], 0.99) == 7.0 and percentile([1.0, 2.0, 3.0], 0.5) == 2.0
    assert percentile([1.0, 2.0], 0.5) == 1.0  # ceil(0.5 * 2) - 1 = 0: a rank, never an interpolation
    assert percentile(list(range(1, 11)), 0.99) == 10 and percentile(list(range(1, 11)), 0.9) == 9
    assert percentile([], 0.5) is None


def test_median_absolute_deviation_ignores_a_few_outliers(probe):
    mad = probe.latency.median_absolute_deviation
    assert mad([1.0, 1.0, 2.0, 2.0, 4.0, 6.0, 9.0]) == 1.0  # median 2; deviations 1 1 0 0 2 4 7
    assert mad([1.0, 2.0, 3.0, 4.0]) == 1.0  # median 2.5; deviations 1.5 .5 .5 1.5
    assert mad([5.0] * 99 + [500.0]) == 0.0
    assert mad([]) is None


def test_blocks_cut_the_calls_in_order(probe):
    blocks = probe.latency.blocks
    values = list(range(23))
    cut = blocks(values)
    assert len(cut) == 4 and [v for block in cut for v in block] == values  # 23 // 5 calls per block = 4 blocks
    assert [len(block) for block in blocks(list(range(100)))] == [20] * 5
    assert blocks([1, 2, 3]) == [[1, 2, 3]] and blocks([9]) == [[9]]


def test_histogram_has_at_most_twelve_round_buckets_holding_every_call(probe):
    latency = probe.latency
    calls = sorted([0.00071 + 0.00001 * (i % 17) for i in range(500)] + [0.0031, 0.0094, 0.02])
    rows = latency.histogram(calls)
    assert 1 <= len(rows) <= 12
    assert sum(count for _, count in rows) == len(calls)
    assert all(LABEL.match(label) for label, _ in rows), rows
    # P99 = 0.87 ms: ten widths of 0.016 ms round up to 0.02; the three slow calls fall past the P99.
    assert rows[0] == ["0.7\u20130.72 ms", 30] and rows[-1] == ["\u2265 0.88 ms", 3]
    for spread in ([0.5] * 10, [1e-5, 2e-5], [0.001 * (1 + i) for i in range(1000)], [120.0, 121.0, 150.0]):
        rows = latency.histogram(sorted(spread))
        assert 1 <= len(rows) <= 12 and sum(count for _, count in rows) == len(spread), (spread[:3], rows)
        assert all(LABEL.match(label) for label, _ in rows), rows
    assert latency.histogram([]) == []


def test_nice_steps(probe):
    nice = probe.latency.nice_step
    assert [nice(w) for w in (0.07, 0.1, 0.11, 0.23, 0.3, 3.0, 0.0042)] == [0.1, 0.1, 0.2, 0.25, 0.5, 5.0, 0.005]


def test_steal_fraction_from_two_proc_stat_readings(probe):
    steal = probe.latency.steal_fraction
    before = [100, 0, 50, 800, 0, 0, 0, 50]
    assert steal(before, [150, 0, 60, 920, 0, 0, 0, 70]) == 0.1  # 20 stolen of 200 ticks
    assert steal(before, before) is None and steal(None, before) is None


def _cgroups(tmp_path, monkeypatch, probe, own: str, files: dict[str, str]):
    root = tmp_path / "cgroup"
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    (tmp_path / "self-cgroup").write_text(own)
    real = probe.cpu.read_text
    monkeypatch.setattr(probe.cpu, "CGROUP_ROOT", str(root))
    monkeypatch.setattr(probe.cpu, "read_text", lambda path: real(str(tmp_path / "self-cgroup")
                                                                  if path == "/proc/self/cgroup" else path))
    return probe.cpu.cpu_quota_cpus()


@pytest.mark.parametrize("own, files, cpus", [
    ("0::/\n", {"cpu.max": "50000 100000\n"}, 0.5),  # a container with its own cgroup namespace
    ("0::/\n", {"cpu.max": "max 100000\n"}, None),
    ("0::/box/probe\n", {"box/cpu.max": "25000 100000\n", "box/probe/cpu.max": "max 100000\n"}, 0.25),  # parent
    ("0::/box/probe\n", {"box/cpu.max": "200000 100000\n", "box/probe/cpu.max": "150000 100000\n"}, 1.5),
    ("4:cpu,cpuacct:/docker/abc\n0::/\n", {"cpu,cpuacct/cpu.cfs_quota_us": "50000\n",  # v1, host path unmounted
                                            "cpu,cpuacct/cpu.cfs_period_us": "100000\n"}, 0.5),
    ("4:cpu,cpuacct:/\n", {"cpu,cpuacct/cpu.cfs_quota_us": "-1\n", "cpu,cpuacct/cpu.cfs_period_us": "100000\n"},
     None),
    ("", {}, None),
])
def test_cpu_quota_in_cpus_from_cgroup_v2_and_v1(tmp_path, monkeypatch, probe, own, files, cpus):
    assert _cgroups(tmp_path, monkeypatch, probe, own, files) == cpus


def test_a_failure_while_timing_is_a_skipped_record_never_an_exception(probe):
    record = probe.latency.latency_record(None, None, None, {}, 1.5)
    assert record["budget_s"] == 1.5 and record["skipped"].startswith("latency could not be measured: ")
    assert "\n" not in record["skipped"]
    assert probe.latency.latency_record(None, None, None, {}, 0.0) == {"skipped": "disabled (--latency-budget 0)",
                                                                        "budget_s": 0.0}


def test_the_host_side_default_budget_is_the_probes(probe):
    assert probe.latency.DEFAULT_BUDGET_S == DEFAULT_LATENCY_BUDGET_S


@pytest.mark.parametrize("argv", [["--latency-budget", "-1"], ["--latency-budget", "nan"], ["--latency-budget", "x"],
                                  ["--cpus", "0"], ["--cpus", "-2"], ["--cpus", "inf"], ["--cpus", "lots"]])
def test_bad_budgets_and_cpu_limits_are_usage_errors(run_cli, tmp_path, capsys, argv):
    with pytest.raises(SystemExit) as exited:
        run_cli("probe", "--out", str(tmp_path / "never"), *argv)
    assert exited.value.code == ExitCode.USAGE
    assert not (tmp_path / "never").exists()


# ------------------------------------------------------------------------------ the stopping rule

def _binomial_cdf(n: int, p: float, k: int) -> Fraction:
    """P(B <= k) for B ~ Binomial(n, p), in exact integers (not the probe's log-gamma sums)."""
    exact = Fraction(p).limit_denominator(1000)
    a, b = exact.numerator, exact.denominator
    return Fraction(sum(math.comb(n, i) * a ** i * (b - a) ** (n - i) for i in range(k + 1)), b ** n)


@pytest.mark.parametrize("n, fraction", [(368, 0.99), (500, 0.99), (2000, 0.99), (6, 0.5), (40, 0.5), (1001, 0.5),
                                         (700, 0.9)])
def test_the_interval_ranks_cover_the_percentile_with_95_percent_and_no_more_than_needed(probe, n, fraction):
    ranks = probe.latency.interval_ranks(n, fraction)
    assert ranks is not None
    low, high = ranks
    assert 1 <= low <= math.ceil(fraction * n) <= high <= n
    # X_(low) <= q <= X_(high) exactly when low <= B <= high - 1, B the count of calls at or below q.
    below_low, below_high = _binomial_cdf(n, fraction, low - 1), _binomial_cdf(n, fraction, high - 1)
    assert below_low <= 0.025 and below_high >= 0.975
    # Equal tails, each as tight as the binomial allows: one rank narrower misses its 2.5 %.
    assert _binomial_cdf(n, fraction, low) > 0.025 and _binomial_cdf(n, fraction, high - 2) < 0.975


def test_p99_has_an_interval_from_368_calls_on_which_is_the_rules_minimum(probe):
    latency = probe.latency
    assert latency.interval_ranks(367, 0.99) is None and latency.interval_ranks(368, 0.99) is not None
    assert latency.interval_ranks(5, 0.5) is None and latency.interval_ranks(6, 0.5) is not None
    assert latency.least_calls((0.5, 0.99)) == 368
    # P50 alone: the blocks of the record (5 of 5 calls) set the floor, not the interval.
    assert latency.least_calls((0.5,)) == latency.BLOCKS * latency.MIN_CALLS_PER_BLOCK


class FakeModel:
    """A model whose calls take what `draw` says, on a clock that only they advance."""

    def __init__(self, draw):
        self.now, self.draw = 0.0, draw

    def clock(self) -> float:
        return self.now

    def call(self) -> float:
        took = self.draw()
        self.now += took
        return took


def test_a_stable_distribution_stops_early_with_the_stated_precision(probe):
    latency = probe.latency
    noise = random.Random(7)
    model = FakeModel(lambda: max(1e-3 + noise.gauss(0, 3e-5), 1e-4) + (0.004 if noise.random() < 0.001 else 0.0))
    run = latency.time_calls(model.call, 2.0, {0.5: 0.05, 0.99: 0.05}, clock=model.clock)
    assert run["stopped"] == "stable"
    assert latency.least_calls((0.5, 0.99)) <= len(run["timings"]) < 1000 and model.now < 1.0
    assert set(run["precision"]) == {"p50", "p99"}
    assert all(0 <= value <= latency.PRECISION for value in run["precision"].values()), run["precision"]
    # The precision said is the one the calls have: recomputed from them.
    assert run["precision"] == latency.precisions(sorted(run["timings"]), (0.5, 0.99))


def test_what_the_gate_judges_is_waited_for_and_a_gated_p99_waits_longer(probe):
    """The gate judges the P50 and the mean: timing stops once both are known to 5 %, the P99 only recorded
    with the precision it reached; a golden whose policy gates the P99 waits for it too, on the same calls."""
    latency = probe.latency
    draws = random.Random(5)
    timings = [1e-3 * draws.lognormvariate(0, 0.4) for _ in range(20000)]
    judged = FakeModel(iter(timings).__next__)
    run = latency.time_calls(judged.call, 2.0, latency.WITH_REFERENCE, clock=judged.clock)
    assert run["stopped"] == "stable" and set(run["precision"]) == {"p50", "mean"}, run["precision"]
    assert len(run["timings"]) >= latency.least_calls((0.99,)) == 368  # never a moment: at least what a P99 needs
    assert all(value <= 0.05 for value in run["precision"].values()), run["precision"]
    assert latency.precisions(sorted(run["timings"]), (0.99,))["p99"] > 0.05  # not known to 5 % yet: not waited for
    gated = FakeModel(iter(timings).__next__)
    strict = latency.time_calls(gated.call, 2.0, latency.GATED_P99, clock=gated.clock)
    assert len(strict["timings"]) > len(run["timings"]) and set(strict["precision"]) == {"p50", "mean", "p99"}
    assert strict["stopped"] == "budget" or strict["precision"]["p99"] <= 0.05, strict["precision"]


def test_the_mean_is_known_by_its_standard_error(probe):
    latency = probe.latency
    assert latency.mean_precision([1.0] * 29) is None  # fewer than MIN_MEAN_CALLS
    values = [1.0, 3.0] * 50  # mean 2, sample sd 1.005: 1.96 × 1.005 / 10 / 2
    assert latency.mean_precision(values) == round(1.959964 * (100 / 99) ** 0.5 / 10 / 2, 4)


def test_a_heavy_tail_runs_to_the_budget_and_says_how_precise_it_got(probe):
    latency = probe.latency
    noise = random.Random(11)
    model = FakeModel(lambda: 1e-3 * noise.lognormvariate(0, 1.5))
    run = latency.time_calls(model.call, 2.0, latency.GATED_P99, clock=model.clock)
    assert run["stopped"] == "budget" and model.now >= 2.0
    assert run["precision"]["p99"] > latency.PRECISION  # the tail never settled in 2 s of calls


def test_too_few_calls_for_an_interval_run_to_the_budget_with_no_precision(probe):
    model = FakeModel(lambda: 0.1)  # 20 calls in the budget: P99 cannot be bounded
    run = probe.latency.time_calls(model.call, 2.0, probe.latency.GATED_P99, clock=model.clock)
    assert run["stopped"] == "budget" and len(run["timings"]) == 20
    assert run["precision"]["p99"] is None and run["precision"]["mean"] is None


def test_only_p50_is_waited_for_when_the_golden_has_no_reference(probe):
    noise = random.Random(3)
    model = FakeModel(lambda: 1e-3 * noise.lognormvariate(0, 0.05))
    run = probe.latency.time_calls(model.call, 2.0, probe.latency.WITHOUT_REFERENCE, clock=model.clock)
    assert run["stopped"] == "stable" and set(run["precision"]) == {"p50"}
    assert len(run["timings"]) == probe.latency.least_calls((0.5,))


def _manifest(tmp_path, document) -> str:
    (tmp_path / "manifest.json").write_text(json.dumps(document))
    return str(tmp_path)


@pytest.mark.parametrize("document, budget, waited", [
    pytest.param({"schema": "envcheck.golden/1", "latency": None}, 0.25, ("p50",), id="sealed-no-reference"),
    pytest.param({"schema": "envcheck.golden/1"}, 0.25, ("p50",), id="sealed-from-before-latency"),
    pytest.param({"schema": "envcheck.golden/1", "latency": {"p50_s": 0.001, "hardware_class": {}}}, 2.0,
                 ("p50", "mean"), id="sealed-with-reference"),
    pytest.param({"batch_size": 32}, 2.0, ("p50", "mean"), id="golden-create-reference-run"),
    pytest.param({"schema": "envcheck.golden/1", "latency": {"p50_s": 0.001}, "policy": {"latency": {"gate_p99": True}}},
                 2.0, ("p50", "mean", "p99"), id="sealed-gating-p99"),
    pytest.param(None, 2.0, ("p50", "mean"), id="no-manifest"),
])
def test_the_plan_follows_whether_the_golden_has_a_latency_reference(probe, tmp_path, document, budget, waited):
    bundle = _manifest(tmp_path, document) if document is not None else str(tmp_path)
    plan = probe.latency.plan(bundle, 2.0)
    assert plan["timed_budget_s"] == budget
    assert tuple(probe.latency.label(fraction) for fraction in plan["goals"]) == waited
    gated = (document or {}).get("policy", {}).get("latency", {}).get("gate_p99")
    assert plan["goals"] == (probe.latency.GATED_P99 if gated else probe.latency.WITHOUT_REFERENCE if budget < 2
                             else probe.latency.WITH_REFERENCE)
    # A shorter budget asked for is kept.
    assert probe.latency.plan(bundle, 0.1)["timed_budget_s"] == 0.1


# ------------------------------------------------------------------------------ the real stage

def _probe(run_cli, golden, out, *argv: str) -> dict:
    code, _, err, _ = run_cli("probe", "--golden", str(golden), "--out", str(out), *argv)
    assert code == ExitCode.OK, err
    document = json.loads((out / "capture.json").read_text())
    assert schemas.problems(CAPTURE_SCHEMA, document) == []
    # The last stage: latency, or after it the layer record of a golden that has one.
    assert document["status"] == "ok" and document["stage"] == ("record-layers" if document.get("layers")
                                                                 else "measure-latency")
    return document


@pytest.mark.slow
def test_the_probe_measures_latency_within_its_budget(run_cli, host_golden, tmp_path):
    budget = 0.5
    document = _probe(run_cli, host_golden, tmp_path / "capture", "--latency-budget", str(budget))
    latency = document["latency"]
    assert set(latency) == CONTRACT_KEYS and set(latency["context"]) == CONTEXT_KEYS
    assert latency["budget_s"] == budget and latency["batch"] == 1
    assert latency["golden_batch"] == document["outputs"]["class_probs"]["shape"][0] > 1
    assert latency["warmup_calls"] >= 1 and latency["calls"] >= 15
    assert 0 < latency["min_s"] <= latency["p50_s"] <= latency["p90_s"] <= latency["p99_s"] <= latency["max_s"]
    assert latency["min_s"] <= latency["mean_s"] <= latency["max_s"]
    assert len(latency["block_p50_s"]) >= 3 and latency["mad_s"] >= 0 and latency["throughput_per_s"] > 0
    assert sum(count for _, count in latency["histogram"]) == latency["calls"] and len(latency["histogram"]) <= 12
    assert latency["context"]["visible_cpus"] >= 1
    # The stopping rule's record: host_golden has a reference, so P50 and P99 were waited for.
    assert latency["stopped"] in ("stable", "budget") and latency["waited_for"] == ["p50", "mean"]
    assert latency["timed_budget_s"] == budget and latency["confidence"] == 0.95
    assert latency["precision_goal"] == {"p50": 0.05, "mean": 0.05}  # host_golden's policy does not gate P99
    assert set(latency["precision"]) == {"p50", "mean", "p99"}  # the P99's as reached, not waited for
    if latency["stopped"] == "stable":
        assert all(latency["precision"][name] <= goal for name, goal in latency["precision_goal"].items())
        assert latency["timed_s"] <= budget + latency["max_s"]  # the look may come with the call past it
    else:
        assert latency["timed_s"] >= budget
    # The budget, measured: the timed calls end with the first call past it; the whole stage adds at most
    # the cold call, half the budget of warm-up and a quarter of throughput calls (each bound overshot by
    # at most one call).
    assert latency["calls"] * latency["mean_s"] <= budget + latency["max_s"]
    batch_call = latency["golden_batch"] / latency["throughput_per_s"]
    allowance = latency["cold_first_call_s"] + budget / 2 + 2 * latency["max_s"] + budget / 4 + batch_call
    assert document["timings"]["latency_s"] <= budget + allowance + 0.25, (document["timings"], latency)


@pytest.mark.slow
def test_a_zero_budget_skips_latency(run_cli, host_golden, tmp_path):
    document = _probe(run_cli, host_golden, tmp_path / "capture", "--latency-budget", "0")
    assert document["latency"] == {"skipped": "disabled (--latency-budget 0)", "budget_s": 0.0}
    assert (tmp_path / "capture" / "outputs.npz").is_file()


@pytest.mark.slow
def test_a_golden_without_a_latency_reference_measures_a_short_stated_budget(run_cli, host_golden, tmp_path):
    golden = tmp_path / "golden"
    shutil.copytree(host_golden, golden)
    manifest = json.loads((golden / "manifest.json").read_text())
    assert manifest["latency"]  # made here, with the reference run's latency
    # The probe reads only the manifest's latency, not its seal: no re-sealing needed for this test.
    del manifest["latency"]  # as the built-in golden's: made without one
    (golden / "manifest.json").write_text(json.dumps(manifest))
    document = _probe(run_cli, golden, tmp_path / "capture")
    latency = document["latency"]
    assert latency["budget_s"] == DEFAULT_LATENCY_BUDGET_S and latency["timed_budget_s"] == 0.25
    assert latency["waited_for"] == ["p50"] and set(latency["precision"]) == {"p50", "p99"}
    assert latency["timed_s"] < 0.25 + latency["max_s"] + 0.05
