"""Summaries of repeated measurements: the median of the runs with their range, and percentiles."""

import math
import statistics
from dataclasses import dataclass


def percentile(values: list[float], q: float) -> float:
    """The ``q`` quantile (0..1) of ``values``, nearest rank."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, math.ceil(q * len(ordered)) - 1))]


@dataclass(frozen=True)
class Figure:
    """One figure measured in several runs: the median and the range."""

    runs: tuple[float, ...]

    @property
    def median(self) -> float:
        """The median of the runs."""
        return statistics.median(self.runs)

    def show(self, digits: int = 0, unit: str = "") -> str:
        """``median (min–max)`` with ``digits`` decimals."""
        fmt = f"{{:,.{digits}f}}"
        if len(self.runs) == 1:
            return fmt.format(self.runs[0]) + unit
        return f"{fmt.format(self.median)}{unit} ({fmt.format(min(self.runs))}–{fmt.format(max(self.runs))})"


def figure(values) -> Figure:
    """A Figure of the given per-run values."""
    return Figure(tuple(values))
