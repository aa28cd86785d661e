"""JT/T 808 message ids, parameter ids and result codes used by wardstream."""

from __future__ import annotations

# terminal -> platform
MSG_TERMINAL_RESPONSE = 0x0001
MSG_HEARTBEAT = 0x0002
MSG_LOGOUT = 0x0003
MSG_REGISTER = 0x0100
MSG_AUTH = 0x0102
MSG_LOCATION = 0x0200
MSG_BATCH = 0x0704
# platform -> terminal
MSG_PLATFORM_RESPONSE = 0x8001
MSG_REGISTER_RESPONSE = 0x8100
MSG_SET_PARAMS = 0x8103

PARAM_REPORT_INTERVAL = 0x0029
"""Parameter id of the default time-based reporting interval (DWORD, seconds)."""

RESULT_OK = 0
RESULT_FAILURE = 1
RESULT_BAD_MESSAGE = 2
RESULT_UNSUPPORTED = 3
REGISTER_NO_SUCH_TERMINAL = 4
"""0x8100 result: the terminal is not in the platform's database."""
