"""A map of search-hit footprints as inline SVG (no tile server or CDN: the app works offline).

Footprints are the WGS84 polygons of the index's GeoJSON; the map is an equirectangular view of
their bounding box with longitudes scaled by cos(latitude), so squares on the ground stay square.
"""

from __future__ import annotations

import html
import math

_WIDTH, _HEIGHT, _PAD = 640, 420, 28


def _rings(geometry: dict) -> list[list[list[float]]]:
    if geometry.get("type") == "Polygon":
        return [geometry["coordinates"][0]]
    if geometry.get("type") == "MultiPolygon":
        return [polygon[0] for polygon in geometry["coordinates"]]
    return []


def footprint_map_html(geojson: dict) -> str:
    """SVG of the features' outer rings, each labelled with its `rank` property, best hit on top."""
    features = [(f, _rings(f.get("geometry") or {})) for f in geojson.get("features", [])]
    features = [(f, rings) for f, rings in features if rings]
    if not features:
        return "<p>No georeferenced footprints among these hits.</p>"
    points = [point for _, rings in features for ring in rings for point in ring]
    lons, lats = [p[0] for p in points], [p[1] for p in points]
    x_scale = math.cos(math.radians((min(lats) + max(lats)) / 2))
    span_x = max((max(lons) - min(lons)) * x_scale, 1e-9)
    span_y = max(max(lats) - min(lats), 1e-9)
    unit = min((_WIDTH - 2 * _PAD) / span_x, (_HEIGHT - 2 * _PAD) / span_y)

    def xy(lon: float, lat: float) -> tuple[float, float]:
        return _PAD + (lon - min(lons)) * x_scale * unit, _HEIGHT - _PAD - (lat - min(lats)) * unit

    shapes = []
    for feature, rings in sorted(features, key=lambda item: -item[0].get("properties", {}).get("rank", 0)):
        rank = feature.get("properties", {}).get("rank", "")
        score = feature.get("properties", {}).get("score")
        title = html.escape(f"#{rank}" + (f"  score {score:.3f}" if isinstance(score, (int, float)) else ""))
        for ring in rings:
            path = " ".join(f"{x:.1f},{y:.1f}" for x, y in (xy(*p[:2]) for p in ring))
            shapes.append(f'<polygon class="footprint" points="{path}"><title>{title}</title></polygon>')
        cx, cy = xy(sum(p[0] for p in rings[0]) / len(rings[0]), sum(p[1] for p in rings[0]) / len(rings[0]))
        shapes.append(f'<text x="{cx:.1f}" y="{cy:.1f}">{html.escape(str(rank))}</text>')
    extent = f"lon {min(lons):.5f} to {max(lons):.5f}, lat {min(lats):.5f} to {max(lats):.5f} (WGS84)"
    return (
        f'<svg id="footprint-map" viewBox="0 0 {_WIDTH} {_HEIGHT}" '
        'width="100%" role="img" aria-label="hit footprints">'
        "<style>.footprint{fill:rgba(220,80,40,.25);stroke:#c0392b;stroke-width:1.5}"
        "text{font:bold 13px sans-serif;fill:#222;text-anchor:middle;dominant-baseline:middle}</style>"
        f'<rect width="{_WIDTH}" height="{_HEIGHT}" fill="#eef3f6" stroke="#9ab"/>{"".join(shapes)}</svg>'
        f"<p>{len(features)} footprints; {extent}</p>"
    )
