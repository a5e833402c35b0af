"""Re-run the experiments of *In-context Learning and Induction Heads* (Olsson et al., 2022).

Importing the package imports no torch: the Snakefile imports `inductionheads.config` at parse time,
and every cluster job re-parses the Snakefile.
"""

__version__ = "0.1.0"
