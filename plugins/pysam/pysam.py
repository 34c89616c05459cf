"""pysam: the reference plugin (pyjson source, print sink, revert function).

Written exactly as the official SDK's documentation shows, so it runs under either SDK.
"""

from print import PrintSink
from pyjson import PyJson
from revert import RevertFunc

from ekuiper import PluginConfig, plugin

if __name__ == "__main__":
    c = PluginConfig("pysam", {"pyjson": lambda: PyJson()}, {"print": lambda: PrintSink()},
                     {"revert": lambda: RevertFunc()})
    plugin.start(c)
