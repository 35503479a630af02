"""The notebooks (jupytext ``.py`` files, not modules) and their runner, ``colabs.runner``.

This package belongs to the checkout, not to the installed ``eqspike_jax`` (setup.cfg's
``packages.find`` includes only ``eqspike_jax*``); run ``python -m colabs.runner`` from the
repository root.
"""
