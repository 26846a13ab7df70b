"""How close the site's import came to an import target (an `import_target_kw` interval).

ratio = 1 − |actual − target| ÷ max(target, 1 kW), clipped to 0–1: 1 on the target, 0 at a
deviation of the whole target (either way) or more. The 1 kW floor keeps a target of 0 kW
from dividing by zero: there, every kW off costs the whole ratio.
"""

from __future__ import annotations

TARGET_SCALE_FLOOR_KW = 1.0
"""The smallest denominator of the ratio (kW)."""


def target_ratio(target_kw: float, actual_kw: float) -> float:
    """1 − |actual − target| / max(target, 1 kW), clipped to [0, 1] (kW, import positive)."""
    scale = max(target_kw, TARGET_SCALE_FLOOR_KW)
    return min(1.0, max(0.0, 1.0 - abs(actual_kw - target_kw) / scale))
