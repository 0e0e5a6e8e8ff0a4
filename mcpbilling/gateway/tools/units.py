"""``convert_units``: convert a quantity between units of length, mass, time, volume,
speed, data size, area, energy or temperature."""

from __future__ import annotations

import math
from typing import Annotated

from mcp.server.mcpserver.exceptions import ToolError
from pydantic import Field

from mcpbilling.gateway.registry import tool

# Each unit's size in its dimension's base unit (m, kg, s, m³, m/s, byte, m², J).
FACTORS: dict[str, dict[str, float]] = {
    "length": {
        "mm": 1e-3,
        "cm": 1e-2,
        "m": 1.0,
        "km": 1e3,
        "in": 0.0254,
        "ft": 0.3048,
        "yd": 0.9144,
        "mi": 1609.344,
        "nmi": 1852.0,
    },
    "mass": {
        "mg": 1e-6,
        "g": 1e-3,
        "kg": 1.0,
        "t": 1e3,
        "oz": 0.028349523125,
        "lb": 0.45359237,
        "st": 6.35029318,
    },
    "time": {
        "ms": 1e-3,
        "s": 1.0,
        "min": 60.0,
        "h": 3600.0,
        "day": 86400.0,
        "week": 604800.0,
        "year": 31557600.0,
    },
    "volume": {
        "ml": 1e-6,
        "l": 1e-3,
        "m3": 1.0,
        "tsp": 4.92892159375e-6,
        "tbsp": 1.478676478125e-5,
        "floz": 2.95735295625e-5,
        "cup": 2.365882365e-4,
        "pt": 4.73176473e-4,
        "qt": 9.46352946e-4,
        "gal": 3.785411784e-3,
    },
    "speed": {"m/s": 1.0, "km/h": 1 / 3.6, "mph": 0.44704, "kn": 1852 / 3600, "ft/s": 0.3048},
    "data": {
        "bit": 0.125,
        "B": 1.0,
        "kB": 1e3,
        "MB": 1e6,
        "GB": 1e9,
        "TB": 1e12,
        "KiB": 1024.0,
        "MiB": 1024.0**2,
        "GiB": 1024.0**3,
        "TiB": 1024.0**4,
    },
    "area": {
        "mm2": 1e-6,
        "cm2": 1e-4,
        "m2": 1.0,
        "ha": 1e4,
        "km2": 1e6,
        "in2": 6.4516e-4,
        "ft2": 0.09290304,
        "acre": 4046.8564224,
        "mi2": 2589988.110336,
    },
    "energy": {
        "J": 1.0,
        "kJ": 1e3,
        "cal": 4.184,
        "kcal": 4184.0,
        "Wh": 3600.0,
        "kWh": 3.6e6,
        "BTU": 1055.05585262,
        "eV": 1.602176634e-19,
    },
}
# Temperatures are affine: (offset, scale) to kelvin, K = (value + offset) * scale.
TEMPERATURES: dict[str, tuple[float, float]] = {
    "K": (0.0, 1.0),
    "C": (273.15, 1.0),
    "F": (459.67, 5 / 9),
    "R": (0.0, 5 / 9),
}
UNITS = {unit: dimension for dimension, units in FACTORS.items() for unit in units}


def convert(value: float, from_unit: str, to_unit: str) -> float:
    if from_unit in TEMPERATURES and to_unit in TEMPERATURES:
        offset, scale = TEMPERATURES[from_unit]
        kelvin = (value + offset) * scale
        if kelvin < 0:
            raise ToolError("That temperature is below absolute zero.")
        offset, scale = TEMPERATURES[to_unit]
        return float(f"{kelvin / scale - offset:.12g}")
    dimension = UNITS.get(from_unit)
    if dimension is None or UNITS.get(to_unit) != dimension:
        known = ", ".join(f"{name}: {' '.join(units)}" for name, units in FACTORS.items())
        raise ToolError(
            f"Cannot convert {from_unit!r} to {to_unit!r}. Units by dimension: {known}; "
            f"temperature: {' '.join(TEMPERATURES)}."
        )
    result = value * FACTORS[dimension][from_unit] / FACTORS[dimension][to_unit]
    if not math.isfinite(result):
        raise ToolError("The result is not a finite number.")
    return float(f"{result:.12g}")  # no binary noise such as 211.99999999999994


@tool(price_cents="0.5", credits=1, timeout_s=5.0)
def convert_units(
    value: Annotated[float, Field(allow_inf_nan=False)],
    from_unit: Annotated[str, Field(max_length=16, description="e.g. km, lb, F, GiB, kWh")],
    to_unit: Annotated[str, Field(max_length=16)],
) -> float:
    """Convert a quantity between units of the same dimension: length, mass, time,
    volume, speed, data size, area, energy, temperature (K, C, F, R)."""
    return convert(value, from_unit, to_unit)
