"""What every room uses and no room owns (DESIGN.md "Layout"): CLI error messages, ..."""
