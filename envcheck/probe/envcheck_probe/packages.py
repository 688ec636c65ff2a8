"""Installed Python distributions and their versions, read from metadata without importing them."""


def normalize_distribution_name(name):
    """'Tensorflow_CPU' -> 'tensorflow-cpu' (one spelling per distribution)."""
    return name.lower().replace("_", "-").replace(".", "-")


def installed_distributions():
    """Every installed distribution with its version, read without importing (venvs included)."""
    try:
        from importlib import metadata
    except ImportError:  # Python < 3.8 has no importlib.metadata
        return {}
    found = {}
    for dist in metadata.distributions():
        name = dist.metadata["Name"]
        if name:
            found[normalize_distribution_name(name)] = dist.version
    return dict(sorted(found.items()))
