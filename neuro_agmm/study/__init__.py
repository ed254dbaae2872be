"""The AGMM study: a fair protocol, a step-size frontier, the right statistics and a verdict per claim.

Why a package of its own: the question "does AGMM do what the paper says?" is answered by a
protocol, not by one training run, and a user should be able to run the same protocol on their
own data (``python -m neuro_agmm.study --help``). Modules:

* ``arms``     — the training arms (vanilla at four latent-weight step sizes, the AGMM variants, the
  SGD setting, the float baseline) and the budgets (``quick``, ``full``);
* ``runner``   — trains arms × seeds in parallel worker processes, reusing finished run directories;
* ``stats``    — paired tests (t-test and Wilcoxon) and the verdict rule;
* ``frontier`` — where a variant lies relative to vanilla's step-size frontier, seed by seed;
* ``probe``    — the identical-weights probe (each mechanism's instantaneous effect on gradients and
  on the flip probability of one SGD or Adam step);
* ``report``   — tables, verdicts and figures; ``__main__`` — the command line.
"""
