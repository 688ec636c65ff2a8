"""Replica consistency of a served model: the golden set sent R times, the answers grouped by digest.

Behind a load balancer (a Kubernetes Service, nginx) one endpoint is several processes, and they need not
compute alike: another CPU, a replica started with other flags, one left behind by a rollout. Each repetition
opens a fresh connection (a Service balances connections, nginx requests), sends the golden set in the batches
the server accepts, and digests the whole answer (sha256 of each output's float32 bytes, in golden order).
More than one digest is the finding `replicas-disagree`, even when every answer is within tolerance of the
golden: a fleet that answers one question two ways is itself the problem a gate should name.

With `--replica-header NAME` (a response header naming the process, e.g. nginx's `$upstream_addr`), each answer
set lists the replicas that gave it, and the replicas that never gave the most frequent set are named odd.

`check_replicas` measures (it talks to the server) and `ReplicaResult.record()` is what the capture keeps in its
target info (`replicas`); compare/serving.py judges that record, so a capture read back from disk is judged alike.
"""
from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from envcheck.targets.endpoint_client import Auth, EndpointClient, EndpointSpec, open_client
from envcheck.ulp import ordered

UNNAMED = "(unnamed)"

Outputs = dict[str, np.ndarray]


@dataclass(frozen=True, slots=True)
class AnswerSet:
    """One distinct answer to the whole golden set, and who gave it."""

    digest: str
    """sha256 over every output's name, dtype, shape and bytes, in golden order."""
    count: int
    """How many repetitions answered exactly this."""
    repetitions: tuple[int, ...]
    """Which repetitions (0-based, in sending order) gave it."""
    replicas: tuple[str, ...]
    """The replicas the header named for it, sorted; empty without --replica-header."""


@dataclass(frozen=True, slots=True)
class Spread:
    """The largest element-wise difference between any two distinct answer sets, for one output."""

    output: str
    max_abs: float
    max_ulp: int | None
    """None for a non-float output (compared by value only)."""


@dataclass(frozen=True, slots=True)
class ReplicaResult:
    """What R repetitions of the golden set brought back."""

    repeat: int
    header: str | None
    """The response header that names the replica; None when none was asked for."""
    answer_sets: tuple[AnswerSet, ...]
    """Most frequent first (ties: first seen first)."""
    spread: tuple[Spread, ...]
    """Per output, over every pair of distinct sets; empty when all answers agree."""

    @property
    def odd_replicas(self) -> tuple[str, ...]:
        """Replicas that never gave the most frequent answer set; none when no set has a strict majority
        (then which side is odd cannot be told from counts) or when no replica was named."""
        if len(self.answer_sets) < 2 or self.answer_sets[0].count == self.answer_sets[1].count:
            return ()
        usual = set(self.answer_sets[0].replicas)
        return tuple(sorted({name for found in self.answer_sets[1:] for name in found.replicas} - usual - {UNNAMED}))

    def record(self) -> dict[str, Any]:
        """The JSON record kept in the capture's target info (`replicas`), read back by replica_findings."""
        return {"repeat": self.repeat, "header": self.header, "distinct": len(self.answer_sets),
                "answer_sets": [{"digest": found.digest, "count": found.count, "repetitions": list(found.repetitions),
                                 "replicas": list(found.replicas)} for found in self.answer_sets],
                "spread": [{"output": s.output, "max_abs": s.max_abs, "max_ulp": s.max_ulp} for s in self.spread],
                "odd_replicas": list(self.odd_replicas)}


def check_replicas(spec: EndpointSpec, auth: Auth, batches: Sequence[Outputs], repeat: int,
                   replica_header: str | None, *, timeout: float, expected_outputs: Mapping[str, str] | None = None,
                   connect: Callable[..., EndpointClient] = open_client) -> ReplicaResult:
    """Send the golden set (`batches`, in golden order, each one request the server accepts) `repeat` times,
    each time over a fresh connection; group the answers. Raises the client's EndpointError (one line) when
    a request fails: a replica that does not answer is an ERROR of the target, not a disagreement.
    `expected_outputs`: as open_client takes it (TF Serving's answers do not name a lone output)."""
    answers: list[tuple[Outputs, str | None]] = []
    for _ in range(repeat):
        client = connect(spec, auth=auth, timeout=timeout, replica_header=replica_header,
                         expected_outputs=expected_outputs)
        try:
            replies = [client.infer(batch) for batch in batches]
        finally:
            client.close()
        answers.append((_joined([reply.outputs for reply in replies]), _replica_of(reply.replica for reply in replies)))
    return group_answers(answers, replica_header)


def group_answers(answers: Sequence[tuple[Outputs, str | None]], header: str | None) -> ReplicaResult:
    """Answer sets from (outputs, replica name or None) per repetition, in sending order."""
    first_seen: dict[str, Outputs] = {}
    repetitions: dict[str, list[int]] = {}
    replicas: dict[str, set[str]] = {}
    for index, (outputs, replica) in enumerate(answers):
        digest = answer_digest(outputs)
        first_seen.setdefault(digest, outputs)
        repetitions.setdefault(digest, []).append(index)
        if header is not None:
            replicas.setdefault(digest, set()).add(replica or UNNAMED)
    order = sorted(first_seen, key=lambda digest: (-len(repetitions[digest]), repetitions[digest][0]))
    sets = tuple(AnswerSet(digest, len(repetitions[digest]), tuple(repetitions[digest]),
                           tuple(sorted(replicas.get(digest, ())))) for digest in order)
    return ReplicaResult(repeat=len(answers), header=header, answer_sets=sets,
                         spread=spread([first_seen[digest] for digest in order]))


def answer_digest(outputs: Outputs) -> str:
    """sha256 of a whole answer: each output's name, dtype, shape and C-order bytes, in the given (golden) order."""
    digest = hashlib.sha256()
    for name, value in outputs.items():
        array = np.ascontiguousarray(value)
        digest.update(f"{name}|{array.dtype.str}|{','.join(map(str, array.shape))}|".encode())
        digest.update(array.reshape(-1).view(np.uint8).data)
    return digest.hexdigest()


def spread(distinct: Sequence[Outputs]) -> tuple[Spread, ...]:
    """Per output, the largest |a − b| and ULP distance between any two of the answer sets.

    The largest pairwise difference at an element is its maximum less its minimum over the sets, so this
    costs one pass over the sets, not one per pair; in ULP the same holds on the ordered-integer line."""
    if len(distinct) < 2:
        return ()
    found = []
    for name in distinct[0]:
        stack = np.stack([np.asarray(outputs[name]) for outputs in distinct if name in outputs])
        if stack.shape[0] < 2 or stack.size == 0:
            continue
        found.append(Spread(name, _max_range(stack.astype(np.float64)), _max_ulp_range(stack)))
    return tuple(found)


# ------------------------------------------------------------------------------------------- helpers

def _joined(replies: list[Outputs]) -> Outputs:
    """One answer from the batches' answers: each output concatenated along the batch axis, in golden order."""
    if len(replies) == 1:
        return replies[0]
    return {name: np.concatenate([reply[name] for reply in replies]) for name in replies[0]}


def _replica_of(names: Any) -> str | None:
    """The replica that answered a repetition; when its batches went to several, all of them joined by `+`."""
    seen = sorted({name for name in names if name})
    return "+".join(seen) if seen else None


def _max_range(stack: np.ndarray) -> float:
    finite = np.where(np.isfinite(stack), stack, 0.0)
    return float(np.max(finite.max(axis=0) - finite.min(axis=0)))


def _max_ulp_range(stack: np.ndarray) -> int | None:
    line = ordered(stack)
    return None if line is None else int(np.max(line.max(axis=0) - line.min(axis=0)))
