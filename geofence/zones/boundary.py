"""Zone boundaries as chunks of segments, and the metric distance to them.

A polygonal zone's boundary is cut into runs of :data:`CHUNK` consecutive
segments (after splitting edges longer than :data:`DENSIFY_DEG`); the
catalogue indexes the chunks' bounding boxes and measures the distance
from a point to the nearest segment of its candidate chunks with
:func:`_chunk_min_distance`, vectorised over (point, chunk) rows.
"""

from __future__ import annotations

import numpy as np
import shapely

from geofence.geo import A_M, E2
from geofence.zones.metric import _DEG, FloatArray, IntArray

#: Boundary segments per indexed chunk.
CHUNK = 8
#: Edges longer than this (degrees, in either coordinate) are split for the
#: distance computation (the shape is unchanged: splits lie on the edge).
DENSIFY_DEG = 0.002
#: The chunks of a zone without segments (a circle), shared and read-only.
_NO_CHUNKS: FloatArray = np.zeros((0, CHUNK, 4))
_NO_CHUNKS.setflags(write=False)


def _segments(geom: shapely.Geometry) -> list[FloatArray]:
    """Boundary rings of a polygonal geometry as (n, 4) segment arrays."""
    out: list[FloatArray] = []
    polys = geom.geoms if isinstance(geom, shapely.MultiPolygon) else [geom]
    for p in polys:
        for ring in [p.exterior, *p.interiors]:
            c = np.asarray(ring.coords, dtype=np.float64)[:, :2]
            seg = np.column_stack([c[:-1], c[1:]])
            seg = seg[(seg[:, 0] != seg[:, 2]) | (seg[:, 1] != seg[:, 3])]
            if len(seg):
                out.append(_densify(seg))
    return out


def _densify(seg: FloatArray) -> FloatArray:
    span = np.maximum(np.abs(seg[:, 2] - seg[:, 0]), np.abs(seg[:, 3] - seg[:, 1]))
    parts = np.maximum(1, np.ceil(span / DENSIFY_DEG).astype(np.int64))
    if int(parts.max()) == 1:
        return seg
    rep = np.repeat(np.arange(len(seg)), parts)
    start = np.repeat(np.cumsum(parts) - parts, parts)
    k = (np.arange(len(rep)) - start).astype(np.float64)
    n = parts[rep].astype(np.float64)
    s = seg[rep]
    t0 = k / n
    t1 = (k + 1) / n
    x0 = s[:, 0] + (s[:, 2] - s[:, 0]) * t0
    y0 = s[:, 1] + (s[:, 3] - s[:, 1]) * t0
    x1 = np.where(k + 1 == n, s[:, 2], s[:, 0] + (s[:, 2] - s[:, 0]) * t1)
    y1 = np.where(k + 1 == n, s[:, 3], s[:, 1] + (s[:, 3] - s[:, 1]) * t1)
    return np.column_stack([x0, y0, x1, y1])


def _chunks(rings: list[FloatArray]) -> FloatArray:
    """Rings cut into runs of CHUNK consecutive segments, (n, CHUNK, 4).

    A short last run is padded with zero-length segments at the ring's last
    vertex, so every run stays continuous (each segment starts where the
    previous ended) and can be read as a polyline of CHUNK + 1 vertices.
    """
    blocks: list[FloatArray] = []
    for seg in rings:
        n = len(seg)
        nc = -(-n // CHUNK)
        pad = nc * CHUNK - n
        if pad:
            end = np.concatenate([seg[-1, 2:], seg[-1, 2:]])[None, :]
            seg = np.vstack([seg, np.repeat(end, pad, axis=0)])
        blocks.append(seg.reshape(nc, CHUNK, 4))
    if not blocks:
        return np.zeros((0, CHUNK, 4))
    return np.ascontiguousarray(np.concatenate(blocks))


def _chunk_bounds(c: FloatArray) -> FloatArray:
    if not len(c):
        return np.zeros((0, 4))
    return np.column_stack([
        np.minimum(c[:, :, 0], c[:, :, 2]).min(axis=1),
        np.minimum(c[:, :, 1], c[:, :, 3]).min(axis=1),
        np.maximum(c[:, :, 0], c[:, :, 2]).max(axis=1),
        np.maximum(c[:, :, 1], c[:, :, 3]).max(axis=1),
    ])


_BLOCK = 32_768


def _chunk_min_distance(
    vx: FloatArray, vy: FloatArray, qc: IntArray, px: FloatArray, py: FloatArray,
) -> FloatArray:
    """Metres from each point to the nearest segment of its candidate chunk."""
    out = np.empty(len(qc), dtype=np.float64)
    for s in range(0, len(qc), _BLOCK):
        e = min(s + _BLOCK, len(qc))
        q = qc[s:e]
        out[s:e] = _block_distance(vx[q], vy[q], px[s:e], py[s:e])
    return out


def _block_distance(vx: FloatArray, vy: FloatArray, px: FloatArray, py: FloatArray) -> FloatArray:
    """Distance from point i to the polyline vx[i], vy[i] (degrees), metres.

    Each vertex goes into a frame centred on the point with the scale at the
    mean latitude of point and vertex, linearised about the point:
    ``kx(lat_p + dlat/2) ~ kx(lat_p) - M sin(lat_p) (pi/180)^2 dlat / 2`` and
    likewise for ``ky`` with dM/dlat; the distance to each segment is then
    planar.
    """
    lat = py * _DEG
    s = np.sin(lat)
    c = np.cos(lat)
    q = 1.0 - E2 * s * s
    m = A_M * (1.0 - E2) / (q * np.sqrt(q))
    nrad = A_M / np.sqrt(q)
    ax = (nrad * c * _DEG)[:, None]
    bx = (m * s * (_DEG * _DEG / 2.0))[:, None]
    ay = (m * _DEG)[:, None]
    by = (3.0 * E2 * m * s * c / q * (_DEG * _DEG / 2.0))[:, None]
    u = vy - py[:, None]
    xv = (vx - px[:, None]) * (ax - bx * u)
    yv = u * (ay + by * u)
    x1 = xv[:, :-1]
    y1 = yv[:, :-1]
    dx = xv[:, 1:] - x1
    dy = yv[:, 1:] - y1
    # zero-length segments (padding): t = 0, the distance to the vertex
    ll = dx * dx + dy * dy + 1e-300
    t = np.minimum(np.maximum(-(x1 * dx + y1 * dy) / ll, 0.0), 1.0)
    ex = x1 + t * dx
    ey = y1 + t * dy
    return np.asarray(np.sqrt((ex * ex + ey * ey).min(axis=1)), dtype=np.float64)


