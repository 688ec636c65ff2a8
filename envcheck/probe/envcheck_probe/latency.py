"""Latency: batch-1 calls of the serving signature timed after the outputs are captured, and the context
that explains the numbers (visible CPUs, CPU quota, TensorFlow's threads, load, CPU steal).

The stage, in order: the cold first batch-1 call; warm-up (WARMUP_CALLS calls, or half the budget,
whichever comes first, at least one call); timed calls until what the gate judges is stable or the budget is
spent (at least one), split into blocks; a few calls on the whole golden batch for throughput (THROUGHPUT_CALLS,
or a quarter of the budget, at least one). Every call is timed with perf_counter_ns and includes bringing
every output back to the host (`.numpy()`), so a GPU's copy back counts. Percentiles are nearest-rank, as
MLPerf LoadGen computes them: sorted[ceil(p * n) - 1].

Stable: what the gate judges (compare/latency.py: the P50 and the mean; the P99 too where the golden's policy
gates it) is known to PRECISION of its estimate, at 95 % confidence. A percentile's interval is distribution-
free, [X_(l), X_(u)] with ranks from the exact binomial (interval_ranks); the mean's is the normal one, ±1.96
standard errors (the calls are many and independent, though a shared machine's tail is heavy: the block-to-block
spread the gate also asks for covers what this misses). The rule first looks once the P99 it shows can have an
interval (368 calls; a golden without a reference: once the P50 can), then each time the calls grew by a
quarter: few looks, so peeking inflates the error little and sorting costs little. The P99 is always recorded
with the precision it reached. A golden without a latency reference (its sealed manifest has none) is compared
on nothing but shows the P50: its probes wait for the P50 alone, within NO_REFERENCE_BUDGET_S.
"""
import gc
import math
import os
import time

from .cpu import cpu_quota_cpus
from .errors import first_line
from .files import read_bundle_manifest, read_text
from .model import call_signature, signature_feeds

DEFAULT_BUDGET_S = 2.0
WARMUP_CALLS = 20
BLOCKS = 5
MIN_CALLS_PER_BLOCK = 5
THROUGHPUT_CALLS = 5
THROUGHPUT_BUDGET_SHARE = 0.25
HISTOGRAM_BUCKETS = 12
NICE_STEPS = (1.0, 2.0, 2.5, 5.0)
DISABLED = "disabled (--latency-budget 0)"
# 5 %: the gate warns at ×1.75 of the golden's P50 or mean, and the same host measured ×0.79–1.46 between
# processes (docs/latency.md); two estimates each within 5 % move a ratio by about ×1.1 at most.
PRECISION = 0.05
CONFIDENCE = 0.95
NORMAL_95 = 1.959964
CHECK_GROWTH = 1.25
MEAN = "mean"
MIN_MEAN_CALLS = 30
# What the gate judges, each to PRECISION: {a percentile's fraction, or MEAN: precision}.
WITH_REFERENCE = {0.50: PRECISION, MEAN: PRECISION}
GATED_P99 = {0.50: PRECISION, MEAN: PRECISION, 0.99: PRECISION}
# Without a reference the report shows the P50 alone: a few hundred milliseconds measure it.
NO_REFERENCE_BUDGET_S = 0.25
WITHOUT_REFERENCE = {0.50: PRECISION}
SHOWN = (0.50, 0.99)


def latency_record(tf, np, signature, inputs, budget_s, bundle_dir=None):
    """The capture's `latency`: the measurement, or {"skipped": reason, "budget_s": …}; never raises.
    `bundle_dir`: the golden, whose manifest says whether it has a latency reference (see plan)."""
    if not budget_s > 0:
        return skipped(DISABLED, budget_s)
    try:
        return measure(tf, np, signature, inputs, budget_s, plan(bundle_dir, budget_s))
    except Exception as error:  # noqa: BLE001 - latency is extra: a failure here never fails the capture
        return skipped("latency could not be measured: %s: %s" % (type(error).__name__, first_line(error)), budget_s)


def skipped(reason, budget_s):
    """The record of a latency stage that measured nothing, and why (one line)."""
    return {"skipped": reason.splitlines()[0] if reason else "skipped", "budget_s": budget_s}


def plan(bundle_dir, budget_s):
    """{"timed_budget_s", "goals": {fraction or MEAN: precision}}: the whole budget and what the gate judges (the P50
    and the mean; the P99 too where the golden's policy gates it), unless the bundle is a sealed golden (its
    manifest names its schema) without a latency reference: then the P50 within NO_REFERENCE_BUDGET_S. A
    reference run of `golden create` reads a manifest of the batch size alone: it measures in full."""
    manifest = read_bundle_manifest(bundle_dir)
    reference = manifest.get("latency")
    if "schema" in manifest and not (isinstance(reference, dict) and reference.get("p50_s")):
        return {"timed_budget_s": min(budget_s, NO_REFERENCE_BUDGET_S), "goals": WITHOUT_REFERENCE}
    return {"timed_budget_s": budget_s, "goals": GATED_P99 if _gates_p99(manifest) else WITH_REFERENCE}


def _gates_p99(manifest):
    policy = manifest.get("policy")
    latency = policy.get("latency") if isinstance(policy, dict) else None
    return isinstance(latency, dict) and latency.get("gate_p99") is True


def measure(tf, np, signature, inputs, asked_s, planned):
    """Time the signature (see the module's docstring) as `planned` says (within its budget, not always the
    `asked_s` one); raises whatever the model raises."""
    budget_s = planned["timed_budget_s"]
    stat_before = cpu_times()
    loadavg = load_average()
    feeds = signature_feeds(tf, np, signature, inputs)
    golden_batch = leading_dimension(feeds)
    one_row = first_rows(signature, feeds, golden_batch)
    batch = 1 if one_row is not feeds else golden_batch

    def call(call_feeds):
        began = time.perf_counter_ns()
        call_signature(signature, call_feeds)
        return (time.perf_counter_ns() - began) / 1e9

    collecting = gc.isenabled()
    gc.disable()  # as timeit does: a collection's pause is not the model's
    try:
        cold = call(one_row)
        warmup_calls, began = 0, time.perf_counter()
        while warmup_calls < 1 or (warmup_calls < WARMUP_CALLS and time.perf_counter() - began < budget_s / 2):
            call(one_row)
            warmup_calls += 1
        run = time_calls(lambda: call(one_row), budget_s, planned["goals"])
        timed = run["timings"]
        throughput_calls, began = 0, time.perf_counter()
        while throughput_calls < 1 or (throughput_calls < THROUGHPUT_CALLS
                                       and time.perf_counter() - began < budget_s * THROUGHPUT_BUDGET_SHARE):
            call(feeds)
            throughput_calls += 1
        throughput_s = time.perf_counter() - began
    finally:
        if collecting:
            gc.enable()
    ordered = sorted(timed)
    return {
        "budget_s": asked_s,
        "timed_budget_s": budget_s,
        "waited_for": [label(fraction) for fraction in planned["goals"]],
        "stopped": run["stopped"],
        "timed_s": run["timed_s"],
        # What was waited for, and the P50 and P99 whatever was: each estimate shown says how precise it is.
        "precision": {**precisions(ordered, SHOWN), **run["precision"]},
        "precision_goal": {label(fraction): goal for fraction, goal in planned["goals"].items()},
        "confidence": CONFIDENCE,
        "batch": batch,
        "cold_first_call_s": cold,
        "warmup_calls": warmup_calls,
        "calls": len(timed),
        "p50_s": percentile(ordered, 0.50),
        "p90_s": percentile(ordered, 0.90),
        "p99_s": percentile(ordered, 0.99),
        "mad_s": median_absolute_deviation(ordered),
        # A CPU quota hardly moves the P50 of a short call (it fits in one CFS period) but stalls some calls
        # for the rest of the period: the mean (and P90/P99, throughput) carry that signal.
        "mean_s": sum(timed) / len(timed),
        "min_s": ordered[0],
        "max_s": ordered[-1],
        "block_p50_s": [percentile(sorted(block), 0.50) for block in blocks(timed)],
        "throughput_per_s": golden_batch * throughput_calls / throughput_s if throughput_s > 0 else None,
        "golden_batch": golden_batch,
        "histogram": histogram(ordered),
        "context": context(tf, loadavg, stat_before, cpu_times()),
    }


def time_calls(call, budget_s, goals, clock=time.perf_counter):
    """Call `call` (it returns the seconds one call took) until each estimate of `goals` ({a percentile's
    fraction, or MEAN: precision}) is stable to its precision or `budget_s` of `clock` is spent, at least once. {"timings",
    "stopped": "stable" | "budget", "timed_s", "precision": the last relative half-widths, by label (None: too
    few calls to bound it)}."""
    fractions = tuple(goals)
    timings, began = [], clock()
    # Where the gate judges (the mean is waited for), never before the P99 shown can have an interval: fewer
    # calls see a moment of a shared machine, and the gate's ratios between processes spread twice as far
    # (bench/bench_latency.py, docs/latency.md). A golden without a reference shows the P50 alone.
    next_look = least_calls(fractions + (SHOWN if MEAN in goals else ()))
    while True:
        timings.append(call())
        if len(timings) >= next_look:
            reached = precisions(sorted(timings), fractions)
            if all(reached[label(fraction)] is not None and reached[label(fraction)] <= goal
                   for fraction, goal in goals.items()):
                return {"timings": timings, "stopped": "stable", "timed_s": clock() - began, "precision": reached}
            next_look = math.ceil(len(timings) * CHECK_GROWTH)
        if clock() - began >= budget_s:
            return {"timings": timings, "stopped": "budget", "timed_s": clock() - began,
                    "precision": precisions(sorted(timings), fractions)}


def least_calls(fractions):
    """The calls before the first look: enough for every percentile to have an interval (P99: 368), the mean
    MIN_MEAN_CALLS, and the blocks of the record."""
    tail = (1 - CONFIDENCE) / 2
    # The upper rank stays within the calls once P(every call below the percentile) <= tail: p^n <= tail.
    needed = [MIN_MEAN_CALLS if fraction == MEAN
              else math.ceil(math.log(tail) / math.log(max(fraction, 1 - fraction))) for fraction in fractions]
    return max(needed + [BLOCKS * MIN_CALLS_PER_BLOCK])


def precisions(ordered, fractions):
    """{label: the relative half-width of the estimate's confidence interval} over sorted timings: for a
    percentile, how far its interval reaches from the nearest-rank estimate, on its longer side; for MEAN,
    1.96 standard errors (None: no interval yet)."""
    reached = {}
    for fraction in fractions:
        if fraction == MEAN:
            reached[MEAN] = mean_precision(ordered)
            continue
        ranks = interval_ranks(len(ordered), fraction)
        estimate = percentile(ordered, fraction)
        if ranks is None or not estimate:
            reached[label(fraction)] = None
            continue
        low, high = ordered[ranks[0] - 1], ordered[ranks[1] - 1]
        reached[label(fraction)] = round(max(estimate - low, high - estimate, 0.0) / estimate, 4)
    return reached


def mean_precision(values):
    """1.96 standard errors of the mean over the mean (None: fewer than MIN_MEAN_CALLS, or a zero mean)."""
    n = len(values)
    average = sum(values) / n if n else 0.0
    if n < MIN_MEAN_CALLS or not average:
        return None
    variance = sum((value - average) ** 2 for value in values) / (n - 1)
    return round(NORMAL_95 * math.sqrt(variance / n) / average, 4)


def interval_ranks(n, fraction, confidence=CONFIDENCE):
    """1-based ranks (l, u) with P(X_(l) <= q <= X_(u)) >= confidence for the fraction's quantile q of any
    continuous distribution, equal tails; None when n calls have no such ranks.

    X_(l) <= q < X_(u) exactly when l <= B <= u - 1, B ~ Binomial(n, fraction) the calls at or below q. The
    binomial is summed exactly (log-gamma terms within 12 standard deviations of the mean; the rest is far
    below 1e-20): at P99's 368 calls n*p*(1-p) is 3.7, where a normal approximation would be poor."""
    tail = (1 - confidence) / 2
    mean, deviation = n * fraction, math.sqrt(n * fraction * (1 - fraction))
    first, last = max(0, int(mean - 12 * deviation) - 2), min(n, int(mean + 12 * deviation) + 2)
    log_n, log_p, log_q = math.lgamma(n + 1), math.log(fraction), math.log1p(-fraction)
    low = high = None
    cumulative = 0.0
    for k in range(first, last + 1):
        cumulative += math.exp(log_n - math.lgamma(k + 1) - math.lgamma(n - k + 1) + k * log_p + (n - k) * log_q)
        if cumulative <= tail:
            low = k + 1  # P(B <= low - 1) <= tail
        if high is None and cumulative >= 1 - tail:
            high = k + 1  # P(B <= high - 1) >= 1 - tail
    if low is None or high is None or high > n:
        return None
    return low, high


def label(fraction):
    """0.5 -> "p50", 0.99 -> "p99", MEAN -> "mean": the record's names of estimates."""
    return MEAN if fraction == MEAN else "p%g" % (fraction * 100)


def leading_dimension(feeds):
    """The golden batch size: the first dimension of the inputs (1 for inputs without one)."""
    for tensor in feeds.values():
        if len(tensor.shape) and tensor.shape[0] is not None:
            return int(tensor.shape[0])
    return 1


def first_rows(signature, feeds, golden_batch):
    """The first row of every input, when the signature takes batch 1; else the feeds themselves."""
    if golden_batch <= 1:
        return feeds
    specs = signature.structured_input_signature[1]
    rows = {}
    for name, tensor in feeds.items():
        if not len(tensor.shape) or tensor.shape[0] != golden_batch:
            return feeds
        rows[name] = tensor[:1]
        if not specs[name].shape.is_compatible_with(rows[name].shape):
            return feeds
    return rows


def percentile(ordered, fraction):
    """Nearest-rank percentile of sorted values (MLPerf LoadGen): ordered[ceil(fraction * n) - 1]."""
    if not ordered:
        return None
    rank = math.ceil(fraction * len(ordered))
    return ordered[min(max(rank, 1), len(ordered)) - 1]


def median(values):
    """The median (the mean of the middle two for an even count)."""
    ordered = sorted(values)
    if not ordered:
        return None
    middle = len(ordered) // 2
    return ordered[middle] if len(ordered) % 2 else (ordered[middle - 1] + ordered[middle]) / 2.0


def median_absolute_deviation(values):
    """median(|x - median(x)|): the spread of the calls, blind to a few outliers."""
    center = median(values)
    return None if center is None else median([abs(value - center) for value in values])


def blocks(values, count=BLOCKS, least=MIN_CALLS_PER_BLOCK):
    """The calls in order, cut into `count` runs of (nearly) equal length, fewer when there are fewer
    than `least` calls per block (one block at the least)."""
    count = max(1, min(count, len(values) // least))
    size, extra = divmod(len(values), count)
    cut, start = [], 0
    for index in range(count):
        end = start + size + (1 if index < extra else 0)
        cut.append(values[start:end])
        start = end
    return [block for block in cut if block]


def histogram(ordered, buckets=HISTOGRAM_BUCKETS):
    """At most `buckets` [label, count] pairs of equal, round widths in milliseconds, from the fastest call
    to the P99; the calls beyond fall in a last "≥ X ms" bucket."""
    if not ordered:
        return []
    low, high = ordered[0] * 1e3, percentile(ordered, 0.99) * 1e3
    # (buckets - 2) widths from the fastest call reach the P99 whatever the first edge's rounding.
    step = nice_step((high - low) / (buckets - 2)) if high > low else nice_step(max(low, 1e-6) / 10.0)
    first = math.floor(low / step + 1e-9)
    counts, overflow = [0] * (buckets - 1), 0
    for value in ordered:
        index = math.floor(value * 1e3 / step + 1e-9) - first
        if index < len(counts):
            counts[max(index, 0)] += 1
        else:
            overflow += 1
    used = max(index for index, count in enumerate(counts) if count) + 1 if any(counts) else 0
    rows = [["%s\u2013%s ms" % (edge(first + index, step), edge(first + index + 1, step)), counts[index]]
            for index in range(used)]
    if overflow:
        rows.append(["\u2265 %s ms" % edge(first + used, step), overflow])
    return rows


def nice_step(width):
    """The smallest of 1, 2, 2.5, 5 times a power of ten that is at least `width` (milliseconds)."""
    power = 10.0 ** math.floor(math.log10(width))
    for factor in NICE_STEPS:
        if factor * power >= width * (1 - 1e-9):
            return factor * power
    return 10.0 * power


def edge(index, step):
    """A bucket edge in milliseconds as short text: 0.7, 0.75, 12."""
    return "%g" % round(index * step, 9)


def context(tf, loadavg, stat_before, stat_after):
    """What explains a latency number here: CPUs, quota, TensorFlow's threads, load and steal."""
    def threads(getter):
        try:
            return int(getter())
        except Exception:  # noqa: BLE001 - private or moved in some release: unknown
            return None

    affinity = getattr(os, "sched_getaffinity", None)
    return {
        "visible_cpus": len(affinity(0)) if affinity else os.cpu_count(),
        "cpu_quota_cpus": cpu_quota_cpus(),
        # 0 means TensorFlow's default: one thread per schedulable CPU.
        "intra_op_threads": threads(tf.config.threading.get_intra_op_parallelism_threads),
        "inter_op_threads": threads(tf.config.threading.get_inter_op_parallelism_threads),
        "loadavg_1m": loadavg,
        "steal_fraction": steal_fraction(stat_before, stat_after),
    }


def load_average():
    """The 1-minute load average, or None where the system has none."""
    try:
        return round(os.getloadavg()[0], 3)
    except (AttributeError, OSError):
        return None


def cpu_times():
    """The aggregate 'cpu' line of /proc/stat: user nice system idle iowait irq softirq steal (ticks)."""
    for line in (read_text("/proc/stat") or "").splitlines():
        fields = line.split()
        if fields and fields[0] == "cpu":
            try:
                return [int(value) for value in fields[1:9]]
            except ValueError:
                return None
    return None


def steal_fraction(before, after):
    """The share of CPU time the hypervisor stole between two cpu_times() (0..1), or None."""
    if not before or not after or len(before) < 8 or len(after) < 8:
        return None
    total = sum(after) - sum(before)
    if total <= 0:
        return None
    return round(min(max((after[7] - before[7]) / float(total), 0.0), 1.0), 4)
