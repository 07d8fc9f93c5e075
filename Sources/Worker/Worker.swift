// Worker: see ../shared/DESIGN.md
