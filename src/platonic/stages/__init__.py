"""The workflow's stages as library functions: each ``run`` opens its input stores, calls the array functions of
its concept and writes its outputs. The CLI (and through it every Snakemake rule) calls these; so can a script.

Settings arrive as the stage's settings object (`platonic.settings`), paths as arguments.
"""
