"""The workflow's steps as library functions: each opens its input stores, calls the array functions of its concept
and writes its outputs. Marked ``@command`` (``platonic.stages.command``), each is the ``platonic`` subcommand of its
name, and the Snakemake rule of that name calls it; a script can call it too.

Settings arrive as the stage's settings object (`platonic.settings`), paths as arguments.
"""
