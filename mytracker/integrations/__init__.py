"""Framework glue that MLflow itself does not provide (each module imports its framework lazily).

- :mod:`mytracker.integrations.torchtune`: a drop-in ``metric_logger`` component for recipes.
"""
