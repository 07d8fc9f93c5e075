// JobStore: see ../shared/DESIGN.md
