"""Small SVG line charts for the eval page, drawn on the server: no script, no asset from elsewhere."""

from __future__ import annotations

from dataclasses import dataclass

WIDTH, HEIGHT, PAD = 240, 60, 4


@dataclass
class Chart:
    points: str  # an SVG polyline's "x,y x,y ..." (empty with no values)
    dots: list[tuple[float, float]]
    top: float  # the value at the top edge; the bottom edge is 0
    width: int = WIDTH
    height: int = HEIGHT


def line_chart(values: list[float | None]) -> Chart:
    """One point per run, left to right; runs without the metric leave a gap in the dots but not in the line.
    Scores are fractions, so the scale is 0..1 unless a value is larger (a count of failed papers)."""
    present = [(i, value) for i, value in enumerate(values) if value is not None]
    top = max([1.0] + [value for _, value in present])
    step = (WIDTH - 2 * PAD) / max(1, len(values) - 1)
    dots = [(round(PAD + i * step, 1), round(HEIGHT - PAD - (HEIGHT - 2 * PAD) * value / top, 1)) for i, value in present]
    return Chart(" ".join(f"{x},{y}" for x, y in dots), dots, top)
