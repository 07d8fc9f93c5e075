// Ensemble: see ../shared/DESIGN.md
