"""Exceptions raised by the SDK.

Every exception the SDK raises on purpose derives from :class:`EkuiperError`, so a plugin
can catch them all with one clause::

    EkuiperError                  root of everything below
    ├── ProtocolError             eKuiper sent a frame or command the SDK cannot understand
    │   └── FrameTooLargeError    a frame longer than EKUIPER_MAX_FRAME_BYTES (peer dropped)
    ├── PluginConfigError         PluginConfig or the plugin descriptor is unusable
    ├── SymbolError               a start command names a symbol the plugin cannot run
    │   └── SymbolNotFoundError   no factory registered under that name and kind
    ├── ChannelClosedError        emit/ack on a symbol that has been stopped
    ├── ChannelTimeout            a channel's send or receive deadline passed
    ├── ChannelConnectError       a channel to eKuiper could not be opened (also a
    │                             ConnectionError)
    ├── PluginProcessError        ekuiper.testing.PluginHost: the plugin process failed
    └── MetricsError              metrics/health export cannot start (the plugin runs on
                                  without it; EKUIPER_PLUGIN_METRICS_DIR)

Messages say what went wrong and what to do about it; the runtime forwards them to
eKuiper verbatim, where they surface as the rule's or plugin's error text.
"""

from __future__ import annotations

__all__ = [
    "ChannelClosedError",
    "ChannelConnectError",
    "ChannelTimeout",
    "EkuiperError",
    "FrameTooLargeError",
    "MetricsError",
    "PluginProcessError",
    "PluginConfigError",
    "ProtocolError",
    "SymbolError",
    "SymbolNotFoundError",
]


class EkuiperError(Exception):
    """Root of every exception the SDK raises on purpose."""


class ProtocolError(EkuiperError):
    """A frame or command from eKuiper is malformed or of an unknown kind."""


class FrameTooLargeError(ProtocolError):
    """A peer announced a frame longer than the frame cap; its connection is dropped.

    Raised inside the transport (and logged there): the cap is EKUIPER_MAX_FRAME_BYTES.
    """


class PluginConfigError(EkuiperError):
    """The PluginConfig handed to ``plugin.start`` (or the descriptor) is unusable."""


class SymbolError(EkuiperError):
    """A symbol could not be started: its factory or ``configure`` failed."""


class SymbolNotFoundError(SymbolError):
    """A start command names a symbol that the PluginConfig does not register."""


class ChannelClosedError(EkuiperError):
    """The symbol was stopped; ``emit``/``ack`` can no longer reach eKuiper.

    Raised from ``ctx.emit`` once the rule stops the source: let it propagate out of
    ``open`` (the runtime expects it and ends the source quietly).
    """


class ChannelTimeout(EkuiperError):
    """A send or receive deadline of a channel passed; the channel is still usable.

    Raised by the transport seam (``ekuiper._transport``) and handled by the runtime
    (backpressure on emit and acks, the function channel's keepalive); it does not
    reach plugin code.
    """


class ChannelConnectError(EkuiperError, ConnectionError):
    """A channel to eKuiper could not be opened, or its socket path cannot be used.

    Nobody listens at the path, another process listens there already, a file that is
    not a socket is in the way, or the peer is not eKuiper (another protocol, or another
    user). It is also a ConnectionError, which is what the transport raised before.
    """


class PluginProcessError(EkuiperError):
    """A plugin run by ``ekuiper.testing.PluginHost`` refused a command or failed.

    The message holds eKuiper-side error text and the end of the plugin's own output.
    """


class MetricsError(EkuiperError):
    """The metrics and health endpoint cannot be served (a bad directory or socket path).

    Logged, never raised into eKuiper: the plugin serves its rules without metrics.
    """
