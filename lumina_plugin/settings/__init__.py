"""Configuration sections of the features, one module each, imported by :mod:`lumina_plugin.config`.

They live apart from the features' code so that the configuration can be read
without importing (and initialising) the features themselves.
"""
