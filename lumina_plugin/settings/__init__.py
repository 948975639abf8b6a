"""Configuration sections of the features, one module each, imported by :mod:`lumina_plugin.config`.

They live apart from the features' code so that the configuration can be read
without importing (and initialising) the features themselves.
"""


class ConfigError(ValueError):
    """A configuration value is missing, of the wrong type or out of range.

    Defined here, below every settings module, and re-exported by :mod:`lumina_plugin.config`.
    """
