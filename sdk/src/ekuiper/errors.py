"""Exceptions raised by the SDK.

Every exception the SDK raises on purpose derives from :class:`EkuiperError`, so a plugin
can catch them all with one clause::

    EkuiperError                  root of everything below
    ├── ProtocolError             eKuiper sent a frame or command the SDK cannot understand
    │   └── FrameTooLargeError    a frame longer than EKUIPER_MAX_FRAME_BYTES (peer dropped)
    ├── PluginConfigError         PluginConfig or the plugin descriptor is unusable
    ├── SymbolError               a start command names a symbol the plugin cannot run
    │   ├── SymbolNotFoundError   no factory registered under that name and kind
    │   ├── PolicyError           an ErrorPolicy or a sink's collect* property is unusable
    │   │                         (also a ValueError)
    │   └── ConfigError           a conf value does not fit the symbol's config_type
    │                             (also a ValueError)
    ├── ArgumentError             a typed function got arguments its call() does not take
    │                             (also a TypeError)
    ├── ChannelClosedError        emit/ack on a symbol that has been stopped
    ├── ChannelTimeout            a channel's send or receive deadline passed
    ├── ChannelConnectError       a channel to eKuiper could not be opened (also a
    │                             ConnectionError)
    ├── StateError                ctx.get/put/delete_state: the state file cannot be used
    ├── PluginProcessError        ekuiper.testing.PluginHost: the plugin process failed
    └── MetricsError              metrics/health export cannot start (the plugin runs on
                                  without it; EKUIPER_PLUGIN_METRICS_DIR)

Messages say what went wrong and what to do about it; the runtime forwards them to
eKuiper verbatim, where they surface as the rule's or plugin's error text.
"""

from __future__ import annotations

__all__ = [
    "ArgumentError",
    "ChannelClosedError",
    "ChannelConnectError",
    "ChannelTimeout",
    "ConfigError",
    "EkuiperError",
    "FrameTooLargeError",
    "MetricsError",
    "PluginProcessError",
    "PluginConfigError",
    "PolicyError",
    "ProtocolError",
    "StateError",
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


class PolicyError(SymbolError, ValueError):
    """An error policy cannot be used: an ``ErrorPolicy`` argument, a symbol's
    ``on_error`` or a sink action's ``collectRetries``/``collectBackoff``/
    ``collectMaxBackoff`` property. The message names the field, the value and what is
    expected; at a start it fails the rule's start with that message.
    """


class ConfigError(SymbolError, ValueError):
    """The conf eKuiper sent does not fit the symbol's ``config_type``.

    The text names the property, the value and the type expected, e.g.
    ``interval: expected a number (float), got 'fast' (str)``; the rule's start fails
    with it.
    """


class ArgumentError(EkuiperError, TypeError):
    """A typed function's ``call`` cannot take the arguments of a call.

    Raised by the default ``validate`` (as its refusal text, when the rule is created)
    and per call, naming the argument, the value and the type expected.
    """


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


class StateError(EkuiperError):
    """Plugin state cannot be kept: its folder or file cannot be created, opened or written.

    The message names the path and ``EKUIPER_PLUGIN_STATE_DIR``, which moves the state.
    A bad key or value is not this: those raise TypeError or ValueError.
    """


class PluginProcessError(EkuiperError):
    """A plugin run by ``ekuiper.testing.PluginHost`` refused a command or failed.

    The message holds eKuiper-side error text and the end of the plugin's own output.
    """


class MetricsError(EkuiperError):
    """The metrics and health endpoint cannot be served (a bad directory or socket path).

    Logged, never raised into eKuiper: the plugin serves its rules without metrics.
    """
