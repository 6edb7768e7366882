"""The diagnostic suite: a diagnostic server, simulated hooks and dashboards, and the checks.

Each ``sio-sniffer`` subcommand here is a module with ``add_arguments(parser)`` and ``run(args)``:
``server`` (serve), ``hook`` (hook-test), ``auth`` (auth-test), ``e2e`` and ``diagnose``.
"""
