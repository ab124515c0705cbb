"""From finished run folders (``results/runs/``) to tables and figures."""
