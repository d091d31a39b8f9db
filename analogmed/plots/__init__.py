"""Figures for papers, in one style (:mod:`analogmed.plots.style`): drift curves (:mod:`.drift`),
study figures (:mod:`.study`: isotropic vs pyramidal, AVM / 1-day score vs latency), uncertainty
(:mod:`.uq`: reliability diagrams, uncertainty maps). PNG (300 dpi) and vector PDF."""
