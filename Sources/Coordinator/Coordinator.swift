// Coordinator: see ../shared/DESIGN.md
