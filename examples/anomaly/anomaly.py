"""anomaly: a numpy-based anomaly scorer, the function anomaly_score(value[, window]).

numpy comes from requirements.txt; `ekuiper-plugin package --bundle-wheels` packs its
wheels, so the plugin installs on a device with no network.
"""

from ekuiper import Function, PluginConfig, plugin


def anomaly_score() -> Function:
    # Imported when eKuiper starts the function, not when the program starts: validate
    # and package run this program to read its PluginConfig, on machines without numpy.
    from scorer import AnomalyScore

    return AnomalyScore()


if __name__ == "__main__":
    plugin.start(PluginConfig("anomaly", {}, {}, {"anomaly_score": anomaly_score}))
