"""Hot-path codec choice: msgspec typed decoding against orjson.

Decodes the same batched envelope of fixes with (a) msgspec into the typed,
validated contract structs and (b) orjson into plain dicts (no validation),
and prints microseconds per message and the ratio. Run:

    .venv/bin/python bench/bench_json.py [--messages 1000] [--rounds 200]
"""

from __future__ import annotations

import argparse
import json
import timeit

import orjson

from geofence.model import TelemetryDecoder


def main() -> None:
    parser = argparse.ArgumentParser(allow_abbrev=False, description=__doc__)
    parser.add_argument("--messages", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=200)
    args = parser.parse_args()
    fixes = [
        {"kind": "fix", "device_id": f"WB-{i:06d}", "ts": 1_795_356_210_000 + i,
         "lat": 32.05 + i * 1e-5, "lon": 118.79, "accuracy_m": 8.0, "battery_pct": 80}
        for i in range(args.messages)
    ]
    payload = json.dumps(fixes).encode()
    decoder = TelemetryDecoder()
    assert len(decoder.decode(payload).messages) == args.messages
    per = args.rounds * args.messages
    typed = min(timeit.repeat(lambda: decoder.decode(payload), number=args.rounds, repeat=3)) / per
    plain = min(timeit.repeat(lambda: orjson.loads(payload), number=args.rounds, repeat=3)) / per
    print(f"msgspec typed + validated : {typed * 1e6:.3f} us/message")
    print(f"orjson loads (baseline)   : {plain * 1e6:.3f} us/message")
    print(f"ratio msgspec/orjson      : {typed / plain:.2f}")


if __name__ == "__main__":
    main()
