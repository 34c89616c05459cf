"""pysam: the reference plugin (pyjson source, print sink, revert function).

Written exactly as the official SDK's documentation shows, so it runs under either SDK.
"""

from ekuiper import PluginConfig, plugin
from print import PrintSink
from pyjson import PyJson
from revert import RevertFunc

if __name__ == "__main__":
    c = PluginConfig("pysam", {"pyjson": lambda: PyJson()}, {"print": lambda: PrintSink()},
                     {"revert": lambda: RevertFunc()})
    plugin.start(c)
