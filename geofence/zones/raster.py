"""Per-zone raster accelerator for large zones.

A zone with many boundary segments, or a wide one, gets a grid over its
bounding box. Cells the boundary does not touch are wholly inside or wholly
outside and carry a lower bound of their distance to the boundary, so most
points are settled by one array lookup; every cell also lists the boundary
chunks within :data:`CELL_REACH_M` of it, so a short exact search needs no
tree query.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import shapely
from numpy.typing import NDArray

from geofence.geo import A_M
from geofence.zones.boundary import _chunk_bounds
from geofence.zones.metric import _DEG, _KY_MIN, FloatArray, _lat_scale_bounds

#: Zones with at least this many boundary segments, or wider than
#: GRID_MIN_EXTENT_M, get a raster accelerator.
GRID_MIN_SEGMENTS = 256
GRID_MIN_EXTENT_M = 2_000.0
GRID_MAX_CELLS = 65_536
GRID_MAX_STEPS = 96
#: Raster cells list the boundary chunks within this many metres of them.
CELL_REACH_M = 250.0


@dataclass(frozen=True, slots=True)
class _Grid:
    """The raster of one zone: ``nx`` by ``ny`` cells of ``dx`` by ``dy`` degrees from ``(x0, y0)``."""

    x0: float
    y0: float
    dx: float
    dy: float
    nx: int
    ny: int
    state: NDArray[np.int8]  # -1 inside, +1 outside, 0 touched by the boundary
    clearance: NDArray[np.float32]  # metres, lower bound of distance to boundary
    cell_start: NDArray[np.int64]  # per cell: first entry in cell_chunks
    cell_count: NDArray[np.int64]  # per cell: number of entries
    cell_chunks: NDArray[np.int64]  # zone-local chunk indices, by cell


def _build_grid(geom: shapely.Geometry, bbox: tuple[float, float, float, float], chunks: FloatArray) -> _Grid:
    x0, y0, x1, y1 = bbox
    kx_lo, ky_lo = _lat_scale_bounds(y0, y1, x1 - x0)
    w_m = max((x1 - x0) * kx_lo, 1.0)
    h_m = max((y1 - y0) * ky_lo, 1.0)
    nseg = int(np.count_nonzero((chunks[:, :, :2] != chunks[:, :, 2:]).any(axis=2)))
    target = min(GRID_MAX_CELLS, max(256, 8 * nseg))
    side = math.sqrt(w_m * h_m / target)
    nx = int(min(512, max(1, math.ceil(w_m / side))))
    ny = int(min(512, max(1, math.ceil(h_m / side))))
    dx = max((x1 - x0) / nx, 1e-12)
    dy = max((y1 - y0) / ny, 1e-12)
    # mark every cell the boundary passes through: sample each segment at
    # under half a cell, then dilate by one cell (catches corner clips)
    seg = chunks.reshape(-1, 4)
    span = np.maximum(np.abs(seg[:, 2] - seg[:, 0]) / dx, np.abs(seg[:, 3] - seg[:, 1]) / dy)
    ns = (np.ceil(span * 2.0).astype(np.int64) + 1).clip(2, None)
    rep = np.repeat(np.arange(len(seg)), ns)
    start = np.repeat(np.cumsum(ns) - ns, ns)
    t = (np.arange(len(rep)) - start) / (ns[rep] - 1).astype(np.float64)
    s = seg[rep]
    px = s[:, 0] + (s[:, 2] - s[:, 0]) * t
    py = s[:, 1] + (s[:, 3] - s[:, 1]) * t
    ix = np.clip(((px - x0) / dx).astype(np.int64), 0, nx - 1)
    iy = np.clip(((py - y0) / dy).astype(np.int64), 0, ny - 1)
    marked = np.zeros((ny + 2, nx + 2), dtype=bool)
    marked[iy + 1, ix + 1] = True
    marked = _dilate(marked)
    # Chebyshev distance (in cells) to the nearest marked cell
    steps = np.full(marked.shape, GRID_MAX_STEPS, dtype=np.int32)
    reached = marked.copy()
    steps[reached] = 0
    for k in range(1, GRID_MAX_STEPS):
        grown = _dilate(reached)
        new = grown & ~reached
        if not new.any():
            break
        steps[new] = k
        reached = grown
    marked = marked[1:-1, 1:-1]
    steps = steps[1:-1, 1:-1]
    cx = x0 + (np.arange(nx) + 0.5) * dx
    cy = y0 + (np.arange(ny) + 0.5) * dy
    gx, gy = np.meshgrid(cx, cy)
    shapely.prepare(geom)  # the catalogue prepares it anyway; here it speeds up the raster
    inside = shapely.contains_xy(geom, gx.ravel(), gy.ravel()).reshape(ny, nx)
    state = np.where(marked, 0, np.where(inside, -1, 1)).astype(np.int8)
    cell_m = min(dx * kx_lo, dy * ky_lo)
    clearance = (np.maximum(steps - 1, 0) * cell_m * 0.9999).astype(np.float32)
    start, count, entries = _cell_lists(chunks, x0, y0, dx, dy, nx, ny, y1)
    return _Grid(x0, y0, dx, dy, nx, ny, state.ravel(), clearance.ravel(), start, count, entries)


def _cell_lists(
    chunks: FloatArray, x0: float, y0: float, dx: float, dy: float, nx: int, ny: int, y1: float,
) -> tuple[NDArray[np.int64], NDArray[np.int64], NDArray[np.int64]]:
    """For each cell, the chunks within CELL_REACH_M of it (CSR layout).

    A point in the cell has every boundary point within CELL_REACH_M of it
    in one of these chunks, so a search of radius <= CELL_REACH_M needs no
    tree query.
    """
    cb = _chunk_bounds(chunks)
    far = min(max(abs(y0), abs(y1)) + CELL_REACH_M / _KY_MIN, 89.9)
    mx = CELL_REACH_M / (A_M * _DEG * math.cos(far * _DEG)) * 1.0001
    my = CELL_REACH_M / _KY_MIN * 1.0001
    ix0 = np.clip(np.floor((cb[:, 0] - mx - x0) / dx), 0, nx - 1).astype(np.int64)
    ix1 = np.clip(np.floor((cb[:, 2] + mx - x0) / dx), 0, nx - 1).astype(np.int64)
    iy0 = np.clip(np.floor((cb[:, 1] - my - y0) / dy), 0, ny - 1).astype(np.int64)
    iy1 = np.clip(np.floor((cb[:, 3] + my - y0) / dy), 0, ny - 1).astype(np.int64)
    w = ix1 - ix0 + 1
    h = iy1 - iy0 + 1
    k = w * h
    chunk = np.repeat(np.arange(len(cb), dtype=np.int64), k)
    j = np.arange(int(k.sum()), dtype=np.int64) - np.repeat(np.cumsum(k) - k, k)
    cx = ix0[chunk] + j % w[chunk]
    cy = iy0[chunk] + j // w[chunk]
    cell = cy * nx + cx
    order = np.argsort(cell, kind="stable")
    count = np.bincount(cell, minlength=nx * ny).astype(np.int64)
    start = np.cumsum(count) - count
    return start, count, chunk[order]


def _dilate(a: NDArray[np.bool_]) -> NDArray[np.bool_]:
    out = a.copy()
    out[1:, :] |= a[:-1, :]
    out[:-1, :] |= a[1:, :]
    b = out.copy()
    out[:, 1:] |= b[:, :-1]
    out[:, :-1] |= b[:, 1:]
    return out

