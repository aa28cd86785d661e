"""Zone catalogue: GeoJSON zones, spatial index and metric signed distance.

A :class:`ZoneCatalogue` holds the zones of the contract (GeoJSON
FeatureCollection, RFC 7946, longitude first): ``Polygon`` and
``MultiPolygon`` (holes honoured) and ``Point`` with ``properties.radius_m``
(a circle that is round on the ground). It answers one question, vectorised
over (zone, point) pairs: how many metres is the point from the zone's
boundary, negative inside and positive outside
(:meth:`ZoneCatalogue.signed_distance_m`).

Geometry semantics
------------------
* Polygon edges are straight lines in longitude/latitude (RFC 7946 section
  3.1.1); containment is decided on those edges exactly (shapely/GEOS).
* Distances are ellipsoidal (WGS 84), measured in a frame centred on each
  point with the mean-latitude scale of each vertex (see
  :func:`geofence.geo.metres_per_degree`). Edges longer than
  :data:`DENSIFY_DEG` are split for the distance computation so the frame's
  curvature stays negligible. Error bound against Vincenty geodesics at
  18-54 N (docs/zones.md): below 1 mm up to 5 km from the boundary, 4 mm at
  10 km.
* Circles: ``distance(centre, point) - radius_m`` with the ellipsoidal
  distance of :func:`geofence.geo.distance_m`.

Speed
-----
Each pair is settled by the cheapest test that can settle it:

1. the zone's bounding box (every kind): a point farther than ``within_m``
   outside it is certainly outside (a metric lower bound is returned);
2. circles left over: one vectorised distance;
3. a per-zone raster (large zones only): cells that the boundary does not
   touch are wholly inside or outside and carry a lower bound of their
   distance to the boundary; a point in such a cell with clearance greater
   than ``within_m`` is settled there;
4. everything else: prepared ``contains_xy`` for the sign and, for the
   distance, candidate boundary chunks (at most :data:`CHUNK` segments
   each) from the raster cell's list or a bulk STRtree query, followed by
   numpy point-segment distances over the candidate (pair, chunk) rows.

No Python loop runs per pair or per zone at query time.

Modules
-------
:mod:`~geofence.zones.features`
    GeoJSON validation and repair, with a precise reason for every fault.
:mod:`~geofence.zones.build`
    One feature (or a whole collection, in vectorised batches) to a zone
    ready to index.
:mod:`~geofence.zones.boundary`
    Boundary segments in chunks, and the point-to-chunk distance kernel.
:mod:`~geofence.zones.raster`
    The raster accelerator of large zones.
:mod:`~geofence.zones.metric`
    Metres-per-degree bounds that make degree boxes safe for metric queries.
:mod:`~geofence.zones.categories`
    The category index: scopes (a category in an area) and the zones of a
    scope near each point, for category rules.
:mod:`~geofence.zones.catalogue`
    :class:`ZoneCatalogue` and :func:`load_zones`.
"""

from __future__ import annotations

from geofence.zones.boundary import CHUNK, DENSIFY_DEG
from geofence.zones.build import _make_zone as _make_zone
from geofence.zones.catalogue import ZoneCatalogue, load_zones
from geofence.zones.features import MAX_RADIUS_M
from geofence.zones.features import _features_of as _features_of

__all__ = [
    "CHUNK",
    "DENSIFY_DEG",
    "MAX_RADIUS_M",
    "ZoneCatalogue",
    "load_zones",
]
