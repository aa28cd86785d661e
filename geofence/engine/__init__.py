"""The rules engine: telemetry in, alert lifecycle records out, in event time.

One :class:`Engine` holds every supervised person's state; see
:mod:`geofence.engine.core` for event time, rewinds and late data. The
package, one concern a module:

========================  ===================================================
``core``                  :class:`Engine`: ``process``, ``advance``, ``flush``
                          (the façade; the other modules are its parts)
``config``                :class:`EngineConfig`, :class:`ProcessResult`, the
                          step key, :func:`tune_gc`, :func:`batch_watermark`
``clock``                 the arrival clock (one step, and an array run)
``classify``              fixes and check-ins against their zone rules, vectorised
``state``                 a lane's data: steps, state machine values, checkpoints
``lanes``                 a person's steps in event time: feed, rewind,
                          checkpoints, timers
``machines``              the rule state machines (the only rule logic)
``quiet``                 fixes that change nothing but liveness, in bulk
                          (arrays of :mod:`geofence.bulk`) or one lane at once
``publish``               releasing records; after a rewind, only the difference
``orders``                installing orders and zones, hot reload
``snapshot``              ``snapshot`` and ``restore``
``keying``                partition keys
``replay``                ``wardstream replay``'s offline evaluation
========================  ===================================================
"""

from geofence.engine.config import EngineConfig, ProcessResult, batch_watermark, tune_gc
from geofence.engine.core import Engine
from geofence.engine.keying import message_key, partition_keys, person_partition_keys
from geofence.engine.machines import _implied_speed as _implied_speed
from geofence.engine.replay import ReplaySummary, fold_records, replay_lines
from geofence.engine.snapshot import SNAPSHOT_VERSION
from geofence.engine.snapshot import _Snapshot as _Snapshot

__all__ = [
    "SNAPSHOT_VERSION",
    "Engine",
    "EngineConfig",
    "ProcessResult",
    "ReplaySummary",
    "batch_watermark",
    "fold_records",
    "message_key",
    "partition_keys",
    "person_partition_keys",
    "replay_lines",
    "tune_gc",
]
