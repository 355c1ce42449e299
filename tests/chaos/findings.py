"""What a chaos run found: each finding names its check, its kind and the ids involved."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Finding:
    # commands | effects | balances | events | duplicates | dlq | processes | conditional
    # | analytics
    check: str
    kind: str
    ids: tuple[str, ...]
    detail: str

    def line(self) -> str:
        return f"{self.check}/{self.kind} [{', '.join(self.ids)}]: {self.detail}"


def finding(check: str, kind: str, ids: str | tuple[str, ...], detail: str) -> Finding:
    return Finding(check, kind, (ids,) if isinstance(ids, str) else ids, detail)


@dataclass
class Report:
    seed: int
    findings: list[Finding] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # observations that are not failures
    deaths: list[str] = field(default_factory=list)
    facts: dict[str, str] = field(default_factory=dict)

    @property
    def passed(self) -> bool:
        return not self.findings

    def text(self, limit: int = 200) -> str:
        lines = [f"chaos run, seed {self.seed}"]
        lines += [f"  {name}: {value}" for name, value in self.facts.items()]
        lines.append(f"deaths ({len(self.deaths)}):")
        lines += [f"  {death}" for death in self.deaths]
        if self.notes:
            lines.append(f"notes ({len(self.notes)}):")
            lines += [f"  {note}" for note in self.notes]
        counts = Counter(f"{f.check}/{f.kind}" for f in self.findings)
        lines.append(f"findings ({len(self.findings)}): {dict(sorted(counts.items()))}")
        lines += [f"  {f.line()}" for f in self.findings[:limit]]
        if len(self.findings) > limit:
            lines.append(f"  ... and {len(self.findings) - limit} more")
        lines.append("PASSED" if self.passed else "FAILED")
        return "\n".join(lines)
