"""Old home of the socket transport, now ``ekuiper._transport.socket``; an alias only.

Kept because bench/drain.py imports ``PullListener`` from here; import from
``ekuiper._transport.socket`` instead.
"""

from ekuiper._transport.socket import PullListener, PushDialer, ReqDialer
from ekuiper.errors import ChannelTimeout

__all__ = ["ChannelTimeout", "PullListener", "PushDialer", "ReqDialer"]
